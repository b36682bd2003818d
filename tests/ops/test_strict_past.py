import sys

import pytest
import torch

from memory_mosaics.ops import strict_past_retrieval, strict_past_retrieval_reference, strict_past_weights
from tests.helpers import assert_close, grad_scale

sp = sys.modules["memory_mosaics.ops.strict_past"]  # the module (the package re-exports a function of that name)


@pytest.mark.parametrize("T", [1, 2, 5, 33])
def test_fast_matches_reference_forward_and_backward(T):
    # float64: the two paths differ by round-off only (~1e-16 of the magnitudes), 10^6 below rtol on any CPU.
    torch.manual_seed(T)
    q = torch.randn(2, 3, T, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, T, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 3, T, 4, dtype=torch.float64, requires_grad=True)
    y_ref = strict_past_retrieval_reference(q, k, v)
    y = strict_past_retrieval(q, k, v)
    if T > 1:
        assert_close(y, y_ref, 1e-10, what="forward")
    if T == 1:  # nothing to read: the output is a constant 0
        assert torch.equal(y, torch.zeros_like(y))
        return
    g = torch.randn_like(y)
    grads, grads_ref = torch.autograd.grad(y, (q, k, v), g), torch.autograd.grad(y_ref, (q, k, v), g)
    # At T = 2 the one readable pair has weight 1: q and k get exactly zero gradient in the reference and
    # round-off in the fast path, so every gradient is measured on the scale of the whole backward pass.
    scale = grad_scale(*grads_ref)
    for a, b_, name in zip(grads, grads_ref, "qkv"):
        assert_close(a, b_, 1e-10, scale=scale, what=f"grad {name}")


def test_first_output_is_zero_and_rows_sum_to_one():
    torch.manual_seed(0)
    q = k = torch.randn(1, 2, 10, 4)
    v = torch.randn(1, 2, 10, 4)
    assert torch.equal(strict_past_retrieval(q, k, v)[:, :, 0], torch.zeros(1, 2, 4))
    w = strict_past_weights(q, k)
    assert torch.equal(w[..., 0, :], torch.zeros(1, 2, 10))
    assert_close(w[..., 1:, :].sum(-1), torch.ones(1, 2, 9))
    assert torch.all(torch.triu(w) == 0), "query t must never read j ≥ t"


@pytest.mark.parametrize("impl", [strict_past_retrieval, strict_past_retrieval_reference])
def test_value_at_t_is_never_read_at_t(impl):
    # Changing v_t (which holds x_{t+1}) must not change y_0..y_t.
    torch.manual_seed(1)
    q = k = torch.randn(1, 1, 12, 4)
    v = torch.randn(1, 1, 12, 4)
    v2 = v.clone()
    v2[:, :, 6] += 5.0
    y, y2 = impl(q, k, v), impl(q, k, v2)
    assert torch.equal(y[:, :, :7], y2[:, :, :7])
    assert not torch.allclose(y[:, :, 7:], y2[:, :, 7:])


# --- retrieval dropout on CPU: a per-key mask shared by all queries, applied to the values (ops.key_dropout) ---

def test_cpu_dropout_is_reference_with_key_masked_values_forward_and_backward():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    p = 0.3
    torch.manual_seed(5)
    y = strict_past_retrieval(q, k, v, p, training=True)
    torch.manual_seed(5)  # the same draw: keys 0..T-2 are the ones the shifted fast path reads
    keep = (torch.rand(2, 3, 16, 1) >= p).to(torch.float64) / (1 - p)
    assert 0 < (keep == 0).sum() < keep.numel()  # some, not all, dropped
    v_masked = torch.cat([v[:, :, :-1] * keep, v[:, :, -1:]], dim=2)
    y_ref = strict_past_retrieval_reference(q, k, v_masked)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    g = torch.randn_like(y)
    for a, b, name in zip(torch.autograd.grad(y, (q, k, v), g), torch.autograd.grad(y_ref, (q, k, v), g), "qkv"):
        assert_close(a, b, rtol=1e-10, what=f"grad {name}")


def test_cpu_dropout_is_unbiased_and_off_in_eval():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    clean = strict_past_retrieval(q, k, v)
    assert torch.equal(strict_past_retrieval(q, k, v, 0.5, training=False), clean)
    mean = torch.stack([strict_past_retrieval(q, k, v, 0.2, training=True) for _ in range(4000)]).mean(0)
    assert_close(mean, clean, rtol=0.05, what="mean over dropout draws")


@pytest.mark.parametrize("T", [1, 2, 9])
def test_key_mask_fast_matches_reference_forward_and_backward(T):
    # A padding mask (left pads in row 0, an interior hole in row 1): both paths agree, gradients included,
    # and a row with nothing admissible before it reads exactly 0.
    torch.manual_seed(10 + T)
    q, k, v = (torch.randn(2, 3, T, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    key_mask = torch.ones(2, T, dtype=torch.bool)
    key_mask[0, : T // 2] = False
    key_mask[1, T // 2] = False
    y_ref = strict_past_retrieval_reference(q, k, v, key_mask=key_mask)
    y = strict_past_retrieval(q, k, v, key_mask=key_mask)
    # Outputs are convex combinations of values: |v| is their scale (they are all 0 where nothing is readable).
    assert_close(y, y_ref, 1e-10, scale=v.abs().max().item(), what="forward")
    first_real = T // 2
    assert torch.equal(y[0, :, : first_real + 1], torch.zeros_like(y[0, :, : first_real + 1]))
    g = torch.randn_like(y)
    grads, grads_ref = torch.autograd.grad(y, (q, k, v), g), torch.autograd.grad(y_ref, (q, k, v), g)
    # One readable pair gives q, k exactly zero gradient; with none readable every gradient is 0: |g|·|v| then.
    scale = grad_scale(*grads_ref) or g.abs().max().item() * v.abs().max().item()
    for a, b_, name in zip(grads, grads_ref, "qkv"):
        assert torch.isfinite(a).all()
        assert_close(a, b_, 1e-10, scale=scale, what=f"grad {name}")


@pytest.mark.parametrize("impl", [strict_past_retrieval, strict_past_retrieval_reference])
def test_masked_keys_are_never_read(impl):
    # Changing a padded key or value changes nothing; an all-True mask is the unmasked result.
    torch.manual_seed(2)
    q = k = torch.randn(2, 2, 8, 4)
    v = torch.randn(2, 2, 8, 4)
    key_mask = torch.ones(2, 8, dtype=torch.bool)
    key_mask[:, :3] = False
    k2, v2 = k.clone(), v.clone()
    k2[:, :, :3] += 3.0
    v2[:, :, :3] -= 7.0
    assert torch.equal(impl(q, k, v, key_mask=key_mask), impl(q, k2, v2, key_mask=key_mask))
    assert_close(impl(q, k, v, key_mask=torch.ones(2, 8, dtype=torch.bool)), impl(q, k, v))


# --- the context memory's case q is k on CPU: one autograd Function over the flash ops (_StrictPastSelf) ---

@pytest.mark.parametrize("flash", [True, False])
@pytest.mark.parametrize("T", [2, 3, 17])
def test_self_retrieval_matches_reference_forward_and_backward(T, flash, monkeypatch):
    """q is k, gradients on: the Function (flash=True) and the autograd fallback (flash ops absent) against the
    reference, in float64, with keys in the (B, T, H, D) memory order the projections give."""
    if not flash:
        monkeypatch.setattr(sp, "_cpu_flash_ops", lambda: None)
    elif sp._cpu_flash_ops() is None:
        pytest.skip("this torch has no CPU flash-attention ops (the fallback is tested)")
    torch.manual_seed(T)
    k = torch.randn(2, T, 3, 4, dtype=torch.float64).transpose(1, 2).requires_grad_()
    v = torch.randn(2, 3, T, 4, dtype=torch.float64, requires_grad=True)
    y = strict_past_retrieval(k, k, v)
    assert (type(y.grad_fn).__name__ == "_StrictPastSelfBackward") == flash
    y_ref = strict_past_retrieval_reference(k, k, v)
    assert_close(y, y_ref, 1e-10, what="forward")
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0]))
    g = torch.randn_like(y)
    grads, grads_ref = torch.autograd.grad(y, (k, v), g), torch.autograd.grad(y_ref, (k, v), g)
    scale = grad_scale(*grads_ref)
    for a, b_, name in zip(grads, grads_ref, "kv"):
        assert_close(a, b_, 1e-10, scale=scale, what=f"grad {name}")


def test_self_retrieval_is_causal_forward_and_backward():
    """With gradients on (the Function's path): y_0..y_t do not depend on k_{t+1..} nor on v_{t..}."""
    torch.manual_seed(2)
    k = torch.randn(1, 2, 12, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 12, 4, dtype=torch.float64, requires_grad=True)
    y = strict_past_retrieval(k, k, v)
    gk, gv = torch.autograd.grad(y[:, :, :7].square().sum(), (k, v))
    assert torch.equal(gk[:, :, 7:], torch.zeros_like(gk[:, :, 7:]))
    assert torch.equal(gv[:, :, 6:], torch.zeros_like(gv[:, :, 6:]))
    assert gk[:, :, :7].abs().sum() > 0 and gv[:, :, :6].abs().sum() > 0
    v2 = v.detach().clone()
    v2[:, :, 6] += 5.0
    y2 = strict_past_retrieval(k, k, v2.requires_grad_())
    assert torch.equal(y[:, :, :7], y2[:, :, :7])
