import pytest
import torch

from memory_mosaics.ops import leaky_average_reference
from memory_mosaics.ops.gated_leaky_average import (
    gated_leaky_average,
    gated_leaky_average_loop,
    gated_leaky_average_reference,
    gated_leaky_average_step,
)
from tests.helpers import assert_close


def _inputs(T, seed, B=2, H=3, D=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, T, D, generator=g, dtype=dtype)
    gate = torch.exp(torch.randn(B, H, T, generator=g, dtype=dtype))  # g = exp(W_g x)
    log_decay = -torch.randn(B, H, T, generator=g, dtype=dtype).abs()  # log λ = -|W_λ x|
    return x, gate, log_decay


def test_reference_matches_recurrence():
    x, gate, ld = _inputs(23, 0)
    assert_close(gated_leaky_average_reference(x, gate, ld), gated_leaky_average_loop(x, gate, ld),
                 rtol=1e-12, what="T×T matrix vs recurrence")


def test_constant_gate_and_decay_is_v1_leaky_average():
    x, _, _ = _inputs(30, 1)
    b = torch.tensor([0.5, 1.7, 5.0], dtype=torch.float64)
    ld = (-b)[None, :, None].expand(2, 3, 30)
    y = gated_leaky_average(x, torch.ones(2, 3, 30, dtype=torch.float64), ld, chunk=4)
    assert_close(y, leaky_average_reference(x, b), rtol=1e-12, what="g=1, λ=e^-b")


@pytest.mark.parametrize("T,chunk", [(1, 4), (7, 4), (16, 4), (37, 4), (70, 4), (300, 8), (200, 64)])
def test_chunked_scan_matches_reference_forward_and_backward(T, chunk):
    # chunk² < T exercises the recursive carry (chunks of chunks).
    x, gate, ld = (t.requires_grad_() for t in _inputs(T, T))
    y_ref = gated_leaky_average_reference(x, gate, ld)
    y = gated_leaky_average(x, gate, ld, chunk=chunk)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    up = torch.randn_like(y_ref)
    ref_grads = torch.autograd.grad(y_ref, (x, gate, ld), up)
    grads = torch.autograd.grad(y, (x, gate, ld), up)
    for name, a, b in zip(("x", "gate", "log_decay"), grads, ref_grads):
        assert_close(a, b, rtol=1e-10, what=f"grad {name}")


def test_causal():
    x, gate, ld = _inputs(50, 3)
    y = gated_leaky_average(x, gate, ld, chunk=8)
    p = 31
    x2, gate2, ld2 = x.clone(), gate.clone(), ld.clone()
    x2[:, :, p] += 1.0
    gate2[:, :, p] *= 3.0
    ld2[:, :, p] -= 0.5
    y2 = gated_leaky_average(x2, gate2, ld2, chunk=8)
    assert torch.equal(y[:, :, :p], y2[:, :, :p])
    assert not torch.allclose(y[:, :, p:], y2[:, :, p:])


def test_decode_step_equals_full_forward():
    x, gate, ld = _inputs(40, 4)
    y = gated_leaky_average(x, gate, ld, chunk=8)
    state = None
    for t in range(40):
        state = gated_leaky_average_step(state, x[:, :, t], gate[:, :, t], ld[:, :, t])
        assert_close(state, y[:, :, t], rtol=1e-12, what=f"step {t}")


def test_float32_long_sequence_with_strong_decay_is_finite():
    # Strong decays over a long sequence: exp(+Σ|log λ|) would overflow; differences of cumsums do not.
    x, gate, ld = _inputs(2000, 5, B=1, H=2, D=3, dtype=torch.float32)
    y = gated_leaky_average(x, gate, ld * 20, chunk=64)
    assert torch.isfinite(y).all()
    y64 = gated_leaky_average(x.double(), gate.double(), ld.double() * 20, chunk=64)
    assert_close(y.double(), y64, rtol=1e-4, what="float32 vs float64")


def test_shape_errors():
    x, gate, ld = _inputs(5, 6)
    with pytest.raises(ValueError, match="shaped like x"):
        gated_leaky_average(x, gate[:, :, :4], ld)
    with pytest.raises(ValueError, match="chunk"):
        gated_leaky_average(x, gate, ld, chunk=1)
