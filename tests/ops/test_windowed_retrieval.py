import pytest
import torch

from memory_mosaics.ops import strict_past_retrieval_reference
from memory_mosaics.ops.adaptive_bandwidth import adaptive_bandwidth, bandwidth_coefficients
from memory_mosaics.ops.windowed_retrieval import (
    lag_mask,
    pairs_read,
    pairs_read_masked,
    windowed_retrieval,
    windowed_retrieval_reference,
)
from tests.helpers import assert_close

BANDS = [(1, None), (1, 1), (1, 7), (3, None), (5, 9), (16, None), (40, None)]


def _qkv(T, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, 4, generator=g, dtype=dtype) for _ in range(3)]


def test_mask_is_the_documented_band():
    m = lag_mask(6, 6, 1, 2)
    assert m.tolist()[4] == [False, False, True, True, False, False]  # t = 4 reads j ∈ [t-h+1, t-1], h = 3
    assert not lag_mask(6, 6, 1, None).diagonal().any()  # never j = t
    long = lag_mask(6, 6, 3, None)
    assert long[5].tolist() == [True, True, True, False, False, False]  # j ≤ t - m
    assert not long[:3].any()


def test_pairs_read_counts_the_mask():
    t = torch.arange(50)
    for lo, hi in BANDS:
        assert torch.equal(pairs_read(t, lo, hi), lag_mask(50, 50, lo, hi).sum(-1)), (lo, hi)


def _key_mask(T, seed):
    """Row 0 left-padded by 5, row 1 with interior holes too."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, T, generator=g) > 0.3
    mask[0] = torch.arange(T) >= 5
    return mask


def test_pairs_read_masked_counts_the_real_keys_read():
    mask = _key_mask(50, 0)
    for lo, hi in BANDS:
        want = (lag_mask(50, 50, lo, hi)[None] & mask[:, None, :]).sum(-1)
        assert torch.equal(pairs_read_masked(mask, lo, hi), want), (lo, hi)
    # left padding: the positions counted from the first real token, as the row alone
    assert torch.equal(pairs_read_masked(mask, 1, 7)[0, 5:], pairs_read(torch.arange(45), 1, 7))


@pytest.mark.parametrize("lo,hi", BANDS)
@pytest.mark.parametrize("T", [9, 33])
def test_masked_fast_matches_reference_forward_and_backward(T, lo, hi):
    q, k, v = (t.requires_grad_() for t in _qkv(T, T + lo + 1))
    mask = _key_mask(T, T)
    y = windowed_retrieval(q, k, v, lo, hi, key_mask=mask)
    y_ref = windowed_retrieval_reference(q, k, v, lo, hi, key_mask=mask)
    assert_close(y, y_ref, rtol=1e-12, what="forward")
    up = torch.randn_like(y)
    grads = torch.autograd.grad((y * up).sum(), (q, k, v))
    grads_ref = torch.autograd.grad((y_ref * up).sum(), (q, k, v))
    for name, a, b in zip("qkv", grads, grads_ref):
        assert_close(a, b, rtol=1e-10, scale=max(g.abs().max().item() for g in grads_ref), what=name)
    # a pad key is never read: changing its value changes nothing
    v2 = v.detach().clone()
    v2[~mask[:, None, :, None].expand_as(v2)] += 1.0
    assert torch.equal(windowed_retrieval(q, k, v2, lo, hi, key_mask=mask), y.detach())


@pytest.mark.parametrize("lo,hi", BANDS)
@pytest.mark.parametrize("T", [1, 2, 9, 33, 70])  # 33 and 70 take the block-banded path for finite bands
def test_fast_matches_reference_forward_and_backward(T, lo, hi):
    q, k, v = (t.requires_grad_() for t in _qkv(T, T + lo))
    y_ref = windowed_retrieval_reference(q, k, v, lo, hi)
    y = windowed_retrieval(q, k, v, lo, hi)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    rows = pairs_read(torch.arange(T), lo, hi) == 0
    assert torch.equal(y[:, :, rows], torch.zeros_like(y[:, :, rows]))  # nothing to read -> exactly 0
    if rows.all():
        return  # the output is a constant 0: no graph
    up = torch.randn_like(y)
    ref_grads = torch.autograd.grad(y_ref, (q, k, v), up)
    # One key per query (max_lag = min_lag = 1): weight 1, so d/dq and d/dk cancel to exactly 0 in the reference;
    # compare against the magnitude of the whole backward.
    scale = max(g.abs().max().item() for g in ref_grads)
    for a, b in zip(torch.autograd.grad(y, (q, k, v), up), ref_grads):
        assert_close(a, b, rtol=1e-10, scale=scale, what="backward")


def test_full_past_is_v1_strict_past():
    q, k, v = _qkv(20, 0)
    assert_close(windowed_retrieval(q, k, v, 1, None), strict_past_retrieval_reference(q, k, v), rtol=1e-12)


@pytest.mark.parametrize("lo,hi", BANDS)
def test_causal_and_band_limited(lo, hi):
    # The output at t changes only if some key/value with lag in [lo, hi] changes.
    q, k, v = _qkv(30, 1)
    y = windowed_retrieval(q, k, v, lo, hi)
    j = 12
    k2, v2 = k.clone(), v.clone()
    k2[:, :, j] += 1.0
    v2[:, :, j] += 1.0
    y2 = windowed_retrieval(q, k2, v2, lo, hi)
    t = torch.arange(30)
    reads_j = (t - j >= lo) & ((t - j <= hi) if hi is not None else True)
    changed = (y - y2).abs().amax(dim=(0, 1, 3)) > 0
    assert torch.equal(changed, reads_j)


def test_bad_lags():
    q, k, v = _qkv(4, 0)
    with pytest.raises(ValueError, match="min_lag"):
        windowed_retrieval(q, k, v, 0)
    with pytest.raises(ValueError, match="max_lag"):
        windowed_retrieval_reference(q, k, v, 3, 2)


def test_adaptive_bandwidth_formula_and_init():
    b0, b1, a = bandwidth_coefficients(torch.full((2,), 1.5), torch.full((2,), 1.5), torch.tensor([1 / 3, -2.0]))
    assert_close(b0, torch.full((2,), 4.4817), rtol=1e-4)
    assert a.tolist() == pytest.approx([1 / 3, 1.0])
    n = torch.tensor([0, 1, 8, 27])
    beta = adaptive_bandwidth(n, b0.double(), b1.double(), a.double())  # (H, T)
    assert beta.shape == (2, 4)
    assert_close(beta[0], b1[0] * torch.tensor([1, 1, 2, 3.0]).double() + b0[0], rtol=1e-6)  # n=0 floored to 1
    assert_close(beta[1], b1[1] * torch.tensor([1, 1, 8, 27.0]).double() + b0[1], rtol=1e-6)
    theta = torch.tensor([1 / 3], requires_grad=True)
    adaptive_bandwidth(torch.tensor([0, 5]), torch.ones(1), torch.ones(1), theta.abs()).sum().backward()
    assert torch.isfinite(theta.grad).all()
