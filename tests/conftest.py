import os
from pathlib import Path

import pytest
import torch

from memory_mosaics.cli import main
from tests.helpers import SHARED_DATA, TINY

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"expected the shared corpora at {SHARED_DATA} (the folder beside the checkout)")
    return SHARED_DATA


# --- a real (tiny) training run, shared by the CLI, training and analysis tests ---

@pytest.fixture
def text_file(shared_data, tmp_path, monkeypatch):
    """The first 20,000 characters of tiny Shakespeare in a temporary file; token cache in tmp."""
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "sh.txt"
    with open(shared_data / "tinyshakespeare.txt", encoding="utf-8") as f:
        path.write_text(f.read(20_000))
    return path


@pytest.fixture
def trained(text_file, tmp_path):
    """A 4-step tiny Memory Mosaic run folder."""
    out = tmp_path / "run"
    assert main(["train", "--model", "mosaic", *TINY, "--max-steps", "4", "--data", str(text_file),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture
def restore_threads():
    """run_icl / run_moons set torch's thread count (their `threads` field): put it back after the test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
