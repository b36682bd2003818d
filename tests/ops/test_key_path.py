"""ops/key_path.py: the fused leaky average + scaled normalisation against the two references, forward and
backward in float64 (every input's gradient), the zero-vector floor, causality."""

import pytest
import torch

from memory_mosaics.ops import leaky_average_reference
from memory_mosaics.ops.key_path import leaky_normalize
from memory_mosaics.ops.normalize import scaled_l2_normalize_reference
from tests.helpers import assert_close


def reference(x, b, s):
    return scaled_l2_normalize_reference(leaky_average_reference(x, b), s)


def _inputs(T, seed):
    torch.manual_seed(seed)
    # (B, T, H, D) memory seen as (B, H, T, D), as the projection gives it
    x = torch.randn(2, T, 3, 4, dtype=torch.float64).transpose(1, 2).requires_grad_()
    b = torch.tensor([0.05, 0.9, 5.0], dtype=torch.float64, requires_grad=True)
    s = torch.rand(3, dtype=torch.float64).add(0.5).requires_grad_()
    return x, b, s


@pytest.mark.parametrize("T", [1, 2, 4, 5, 40])  # chunk 4: 40 > 4² runs the carry recursion twice
def test_matches_reference_forward_and_backward(T):
    x, b, s = _inputs(T, T)
    y, y_ref = leaky_normalize(x, b, s, 4), reference(x, b, s)
    assert_close(y, y_ref, 1e-12, what="forward")
    g = torch.randn_like(y_ref)
    grads, grads_ref = torch.autograd.grad(y, (x, b, s), g), torch.autograd.grad(y_ref, (x, b, s), g)
    scale = max(t.abs().max().item() for t in grads_ref)
    for name, a, r in zip(("x", "b", "scale"), grads, grads_ref):
        assert T == 1 and name == "b" or a.abs().sum() > 0, f"{name}: all-zero gradient"
        assert_close(a, r, 1e-12, scale=scale, what=f"grad {name}")


def test_gradcheck_and_partial_gradients():
    x, b, s = _inputs(9, 0)
    assert torch.autograd.gradcheck(lambda x, b, s: leaky_normalize(x, b, s, 4), (x, b, s))
    (gb,) = torch.autograd.grad(leaky_normalize(x.detach(), b, s.detach(), 4).sum(), (b,))
    (gb_ref,) = torch.autograd.grad(reference(x.detach(), b, s.detach()).sum(), (b,))
    assert_close(gb, gb_ref, 1e-12, what="grad b only")


def test_zero_vectors_take_the_floor_branch():
    """k̄_0 = 0 (a zero first input): its key is 0 and the gradients are the references' (no projection term)."""
    x, b, s = _inputs(6, 1)
    with torch.no_grad():
        x[:, :, 0] = 0.0
    y = leaky_normalize(x, b, s, 4)
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0]))
    g = torch.randn_like(y)
    grads, grads_ref = torch.autograd.grad(y, (x, b, s), g), torch.autograd.grad(reference(x, b, s), (x, b, s), g)
    scale = max(t.abs().max().item() for t in grads_ref)
    for a, r in zip(grads, grads_ref):
        assert_close(a, r, 1e-12, scale=scale)


def test_is_causal_forward_and_backward():
    x, b, s = _inputs(20, 2)
    y = leaky_normalize(x, b, s, 4)
    (gx,) = torch.autograd.grad(y[:, :, :9].square().sum(), (x,))
    assert torch.equal(gx[:, :, 9:], torch.zeros_like(gx[:, :, 9:]))
    x2 = x.detach().clone()
    x2[:, :, 9] += 1.0
    assert torch.equal(leaky_normalize(x2, b, s, 4)[:, :, :9], y[:, :, :9])
