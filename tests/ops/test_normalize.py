"""ops/normalize.py: the fast scaled L2 normalisation (and the value's peek mix) against the reference,
forward and backward in float64; the edge cases that must stay finite."""

import pytest
import torch

from memory_mosaics.ops.normalize import scaled_l2_normalize, scaled_l2_normalize_reference
from tests.helpers import assert_close


def _check(x, scale, gamma=None, rtol=1e-12):
    inputs = [t for t in (x, scale, gamma) if t is not None]
    y_fast = scaled_l2_normalize(x, scale, gamma)
    y_ref = scaled_l2_normalize_reference(x, scale, gamma)
    assert_close(y_fast, y_ref, rtol, what="forward")
    g = torch.randn_like(y_ref)
    grads_fast = torch.autograd.grad(y_fast, inputs, g)
    grads_ref = torch.autograd.grad(y_ref, inputs, g)
    scale_all = max(t.abs().max().item() for t in grads_ref)
    for name, a, b in zip(("x", "scale", "gamma"), grads_fast, grads_ref):
        assert a.abs().sum() > 0, f"{name}: all-zero gradient"
        assert_close(a, b, rtol, scale=scale_all, what=f"grad {name}")


@pytest.mark.parametrize("T", [1, 2, 17])
@pytest.mark.parametrize("mix", [False, True])
def test_fast_matches_reference(T, mix):
    torch.manual_seed(T)
    # A (B, T, H, D) buffer seen as (B, H, T, D): the layout the projections produce.
    x = torch.randn(2, T, 3, 5, dtype=torch.float64).transpose(1, 2).requires_grad_()
    scale = torch.rand(3, dtype=torch.float64).add(0.5).requires_grad_()
    gamma = torch.rand(3, dtype=torch.float64).requires_grad_() if mix else None
    if mix and T == 1:  # one position: γ only scales x, and the normalisation removes that: ∂/∂γ is 0
        y_fast, y_ref = scaled_l2_normalize(x, scale, gamma), scaled_l2_normalize_reference(x, scale, gamma)
        assert_close(y_fast, y_ref, 1e-12)
        return
    _check(x, scale, gamma)


def test_zero_vectors_take_the_floor_branch():
    """A zero vector (a zero input row; the last value when γ = 0) gives 0, and the gradient is the reference's
    (the projection term drops below the 1e-12 floor)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    x[0, 1, 2] = 0.0
    x.requires_grad_()
    scale = torch.rand(3, dtype=torch.float64).add(0.5).requires_grad_()
    gamma = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64, requires_grad=True)
    assert torch.equal(scaled_l2_normalize(x, scale, gamma)[:, 0, -1], torch.zeros(2, 4, dtype=torch.float64))
    _check(x, scale)
    _check(x, scale, gamma)


def test_half_precision_stays_finite():
    """γ = 0: the last value mixes only the zero beyond the end; in fp16 the floor must not give 0·inf."""
    x = torch.randn(1, 2, 5, 8).half().requires_grad_()
    y = scaled_l2_normalize(x, torch.ones(2), torch.zeros(2, requires_grad=True))
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    assert torch.equal(y[..., -1, :], torch.zeros_like(y[..., -1, :]))
    y.float().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_mix_needs_a_time_axis():
    with pytest.raises(ValueError, match="B, H, T, D"):
        scaled_l2_normalize(torch.randn(2, 3, 4), torch.ones(2), torch.ones(2))
