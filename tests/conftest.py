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


def assert_close(actual, expected, rtol=1e-5, *, scale=None, what=""):
    """max|a - b| ≤ rtol · S, with S = max|b|, or `scale` when that is larger. There is no absolute term.

    Round-off is relative to the magnitudes that enter a computation, never to zero: an absolute tolerance
    is a guess about one CPU's round-off, and it flips on another CPU wherever the expected value is (close
    to) exactly zero — e.g. a gradient that cancels exactly in the reference but only to round-off in the
    fast path. Element-wise relative error is meaningless for such entries too, so the error is measured
    against the largest magnitude of the tensor; where the whole expected tensor can vanish, pass `scale`:
    the magnitude of the quantities it is computed from (e.g. the largest gradient of the same backward).
    """
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    size = expected.abs().max().item() if expected.numel() else 0.0
    s = max(size, scale or 0.0)
    assert s > 0 or err == 0, f"{what}: expected is all zero and no scale given; pass scale= (or test equality)"
    assert err <= rtol * s, f"{what}: max abs error {err:.3g} > {rtol:g} x scale {s:.3g}"


def grad_scale(*modules_or_tensors) -> float:
    """The largest |gradient| over the given modules' parameters (or gradient tensors): the magnitude of one
    backward pass, the scale for comparing any single gradient of it (some cancel to exactly zero)."""
    out = 0.0
    for m in modules_or_tensors:
        grads = [p.grad for p in m.parameters() if p.grad is not None] if hasattr(m, "parameters") else [m]
        out = max([out] + [g.abs().max().item() for g in grads if g.numel()])
    return out


def one_line_error(capsys, argv, match):
    """`mosaic ARGV` fails the way every user error must: exit 2, one line on stderr naming it, no traceback."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert match in err, err
    return err


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
