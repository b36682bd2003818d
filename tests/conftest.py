import os
from pathlib import Path

import pytest
import torch

from memory_mosaics.cli import main

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"expected the shared corpora at {SHARED_DATA} (the folder beside the checkout)")
    return SHARED_DATA


def assert_close(actual, expected, rtol=1e-5, atol=1e-7, what=""):
    """Relative to the tensor's scale: max|a - b| ≤ rtol · max|b| + atol.

    Element-wise relative error is meaningless for entries that are sums cancelling to ~0 (float32 gradients
    of a softmax), so "agree to 1e-5 relative" is measured against the largest magnitude.
    """
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    assert err <= rtol * scale + atol, f"{what}: max abs error {err:.3g} > {rtol:g} x scale {scale:.3g} + {atol:g}"


# --- a real (tiny) training run, shared by the CLI, training and analysis tests ---

@pytest.fixture
def text_file(shared_data, tmp_path, monkeypatch):
    """The first 20,000 characters of tiny Shakespeare in a temporary file; token cache in tmp."""
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "sh.txt"
    with open(shared_data / "tinyshakespeare.txt", encoding="utf-8") as f:
        path.write_text(f.read(20_000))
    return path


TINY = ["--preset", "tiny", "--batch-size", "4", "--warmup-steps", "2", "--eval-interval", "4",
        "--eval-batches", "2", "--log-interval", "1", "--no-progress", "--threads", "1"]


@pytest.fixture
def trained(text_file, tmp_path):
    """A 4-step tiny Memory Mosaic run folder."""
    out = tmp_path / "run"
    assert main(["train", "--model", "mosaic", *TINY, "--max-steps", "4", "--data", str(text_file),
                 "--out", str(out)]) == 0
    return out
