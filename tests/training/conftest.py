import pytest


@pytest.fixture
def small_text(shared_data, tmp_path, monkeypatch):
    """The first 20,000 characters of tiny Shakespeare in a temporary file (the cache goes to tmp too)."""
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "sh.txt"
    with open(shared_data / "tinyshakespeare.txt", encoding="utf-8") as f:
        path.write_text(f.read(20_000))
    return path


def tiny_args(data, out, **over):
    """TrainConfig kwargs for a seconds-long tiny run."""
    args = dict(model="mosaic", preset="tiny", data=str(data), out=str(out), batch_size=4, max_steps=8,
                warmup_steps=2, lr=1e-2, eval_interval=4, eval_batches=2, log_interval=1, progress=False,
                threads=1)
    args.update(over)
    return args
