import pytest

from memory_mosaics.cli import main


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
