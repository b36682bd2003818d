"""Helpers the tests import (conftest.py keeps only fixtures)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from memory_mosaics.cli import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


TINY = ["--preset", "tiny", "--batch-size", "4", "--warmup-steps", "2", "--eval-interval", "4",
        "--eval-batches", "2", "--log-interval", "1", "--no-progress", "--threads", "1"]



def run_torchrun(n, argv, timeout=120):
    """`torchrun --nproc_per_node n -m memory_mosaics.cli ARGV` on the CPU (gloo), one thread per process;
    fails the test with the workers' stderr unless it exits 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
           "-m", "memory_mosaics.cli", *argv]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a hang kills the workers too
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    return out, err


def tiny_args(data, out, **over):
    """TrainConfig kwargs for a seconds-long tiny run."""
    args = dict(model="mosaic", preset="tiny", data=str(data), out=str(out), batch_size=4, max_steps=8,
                warmup_steps=2, lr=1e-2, eval_interval=4, eval_batches=2, log_interval=1, progress=False,
                threads=1)
    args.update(over)
    return args


def assert_padded_decoding_is_each_row_alone(model, idx, mask, lengths, new):
    """Prefill a left-padded batch idx (B, T) with mask, decode `new` (B, n) token by token: each row's prompt
    logits and every step equal the unpadded forward of that row alone (float64 models)."""
    logits, cache = model.prefill(idx, mask)
    steps = [model.decode_step(new[:, j:j + 1], cache) for j in range(new.shape[1])]
    for i, n in enumerate(lengths):
        alone = model(torch.cat([idx[i:i + 1, -n:], new[i:i + 1]], dim=1))
        assert_close(logits[i:i + 1, -n:], alone[:, :n], rtol=1e-10, what=f"prefill row {i}")
        for j, step in enumerate(steps):
            assert_close(step[i:i + 1], alone[:, n + j:n + j + 1], rtol=1e-10, what=f"step {j} row {i}")
