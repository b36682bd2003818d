"""Each layer's fast path against its reference path: outputs and the gradient of every parameter
(decay ρ, bandwidth θ, peek mix γ, scales η, projections, banks)."""

import copy
import math

import pytest
import torch

from memory_mosaics import MosaicConfig
from memory_mosaics.layers import ContextMemory, KeyExtractor, PersistentMemory, ValueExtractor, set_impl
from memory_mosaics.ops import leaky_average_reference
from tests.helpers import assert_close, grad_scale

CFG = MosaicConfig.preset("tiny", n_embd=24, n_head=3, pmem_size=10, scan_chunk=8)


def compare_fast_and_reference(module, x, rtol=1e-9):
    """Forward and every parameter's gradient, fast path against reference, in float64.

    Both paths compute the same maths in a different order; in float64 their difference is round-off,
    ~1e-16 times the magnitudes involved, so rtol 1e-9 leaves a margin of ~10^6 on any CPU (summation order,
    FMA, vector width only move the round-off within that bound), while a real discrepancy is far above it.
    Gradients are compared on the scale of the whole backward pass (`grad_scale`): with T = 2 a query reads a
    single pair (softmax weight 1), so the key parameters get exactly zero gradient in the reference and
    round-off in the fast path — their own scale is zero.
    """
    # With T = 1 there is no past, so the decay legitimately gets no gradient.
    # With T = 2 a query reads a single pair (softmax weight 1), so no gradient reaches the keys either.
    require_nonzero = x.shape[1] > 2
    fast = set_impl(module.double(), "fast")
    ref = set_impl(copy.deepcopy(fast), "reference")
    x = x.double()
    y_fast, y_ref = fast(x), ref(x)
    assert_close(y_fast, y_ref, rtol, what="forward")
    g = torch.randn_like(y_fast)
    y_fast.backward(g)
    y_ref.backward(g)
    names = [n for n, p in fast.named_parameters()]
    assert names, "module has no parameters"
    scale = grad_scale(ref)
    for (name, p_fast), p_ref in zip(fast.named_parameters(), ref.parameters()):
        assert p_fast.grad is not None, f"{name} got no gradient"
        assert not require_nonzero or p_fast.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
        assert_close(p_fast.grad, p_ref.grad, rtol, scale=scale, what=f"grad {name}")
    return names


@pytest.mark.parametrize("T", [1, 9, 40])
def test_key_extractor(T):
    torch.manual_seed(0)
    names = compare_fast_and_reference(KeyExtractor(CFG), torch.randn(2, T, 24))
    assert {"proj.weight", "rho", "theta"} <= set(names)


def test_key_extractor_definition():
    torch.manual_seed(1)
    ke = KeyExtractor(CFG)
    x = torch.randn(1, 12, 24)
    k = ke(x)
    kbar = leaky_average_reference(ke.project(x), 10 * ke.rho.abs())
    s = torch.exp(torch.clamp(10 * ke.theta, max=5)).view(-1, 1, 1)
    assert_close(k, s * kbar / kbar.norm(dim=-1, keepdim=True))
    assert_close(k.norm(dim=-1), s.expand(-1, 12, 1).squeeze(-1)[None].expand(1, -1, -1))
    # β = s² starts at e², λ spans e^-0.5 .. e^-5
    assert_close(ke.bandwidth(), torch.full((3,), math.e**2))
    assert_close(torch.exp(-ke.decay_rate()), torch.exp(-torch.linspace(0.5, 5, 3)))


def test_bandwidth_cap_blocks_gradient():
    ke = KeyExtractor(CFG)
    with torch.no_grad():
        ke.theta.fill_(1.0)  # 10θ = 10 > cap 5
    ke.bandwidth().sum().backward()
    assert torch.equal(ke.theta.grad, torch.zeros(3))
    assert_close(ke.bandwidth(), torch.full((3,), math.exp(10)))


def test_value_extractor_definition():
    torch.manual_seed(2)
    ve = ValueExtractor(CFG)
    x = torch.randn(2, 7, 24)
    v = ve(x)
    vt = ve.project(x)
    g = ve.gamma.view(-1, 1, 1)
    for t in range(7):
        nxt = vt[:, :, t + 1] if t + 1 < 7 else torch.zeros_like(vt[:, :, t])
        mix = (1 - g[:, 0]) * nxt + g[:, 0] * vt[:, :, t]
        want = torch.exp(10 * ve.eta).view(-1, 1) * mix / mix.norm(dim=-1, keepdim=True)
        assert_close(v[:, :, t], want, what=f"t={t}")


@pytest.mark.parametrize("T", [1, 9])
def test_value_extractor(T):
    torch.manual_seed(6)
    names = compare_fast_and_reference(ValueExtractor(CFG), torch.randn(2, T, 24))
    assert {"proj.weight", "gamma", "eta"} <= set(names)


def test_value_with_gamma_zero_has_no_nan_at_last_position():
    ve = ValueExtractor(CFG)
    with torch.no_grad():
        ve.gamma.zero_()
    v = ve(torch.randn(1, 5, 24))
    assert torch.isfinite(v).all()
    assert torch.equal(v[:, :, -1], torch.zeros_like(v[:, :, -1]))


@pytest.mark.parametrize("T", [1, 2, 30])
def test_context_memory(T):
    torch.manual_seed(3)
    names = compare_fast_and_reference(ContextMemory(CFG), torch.randn(2, T, 24)) if T > 1 else None
    if T == 1:  # one position reads nothing: the output is exactly zero
        assert torch.equal(ContextMemory(CFG)(torch.randn(2, 1, 24)), torch.zeros(2, 1, 24))
    else:
        assert {"key.rho", "key.theta", "value.gamma", "value.eta", "c_proj.weight"} <= set(names)


def test_context_memory_first_position_is_zero():
    cm = ContextMemory(CFG)
    assert torch.equal(cm(torch.randn(3, 11, 24))[:, 0], torch.zeros(3, 24))


@pytest.mark.parametrize("T", [1, 30])
def test_persistent_memory(T):
    torch.manual_seed(4)
    names = compare_fast_and_reference(PersistentMemory(CFG), torch.randn(2, T, 24))
    assert {"key_bank", "value_bank", "eta", "query.rho", "query.theta"} <= set(names)


def test_persistent_memory_definition():
    torch.manual_seed(5)
    pm = PersistentMemory(CFG)
    x = torch.randn(1, 6, 24)
    q = pm.query(x)  # (1, H, T, dh), scaled by s²
    s2 = torch.exp(2 * torch.clamp(10 * pm.query.theta, max=5)).view(-1, 1)
    assert_close(q.norm(dim=-1)[0], s2.expand(-1, 6))
    w = torch.softmax(q @ pm.key_bank.transpose(-1, -2), dim=-1)
    y = torch.exp(10 * pm.eta).view(1, -1, 1, 1) * (w @ pm.value_bank)
    want = pm.c_proj(y.transpose(1, 2).reshape(1, 6, 24))
    assert_close(pm(x), want)


def test_initial_values_follow_the_reference():
    torch.manual_seed(6)
    cfg = MosaicConfig.preset("tiny", n_head=4, n_embd=32)
    cm, pm = ContextMemory(cfg), PersistentMemory(cfg)
    for ke in (cm.key, pm.query):  # ρ = linspace(0.5, 5, H)/10, θ = 0.1 in both extractors
        assert_close(ke.rho, torch.linspace(0.5, 5, 4) / 10)
        assert_close(ke.theta, torch.full((4,), 0.1))
    assert_close(cm.value.eta, torch.full((4,), -0.05))  # α = e^-0.5
    assert_close(pm.eta, torch.full((4,), -0.05))
    assert_close(pm.scale(), torch.full((4,), math.exp(-0.5)))
    assert torch.all((cm.value.gamma >= 0) & (cm.value.gamma <= 1))  # U(0, 1)
    assert_close(pm.query.scale(), torch.full((4,), math.e**2))  # P-mem queries carry s²


def test_value_with_gamma_zero_has_no_nan_in_half_precision():
    torch.manual_seed(7)
    cm = ContextMemory(CFG).half()
    with torch.no_grad():
        cm.value.gamma.zero_()
    x = torch.randn(1, 6, 24).half()
    for impl in ("fast", "reference"):
        set_impl(cm, impl)
        assert torch.isfinite(cm(x)).all(), impl


def test_pmem_cpu_dropout_drops_slots_shared_by_the_sequence():
    # Fast path on CPU: SDPA without dropout over values scaled by a per-(batch, head, slot) keep mask.
    torch.manual_seed(0)
    cfg = CFG.replace(pmem_attn_dropout=0.25)
    layer = PersistentMemory(cfg).double().train()
    q = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(7)
    y = layer.recall(q)
    torch.manual_seed(7)
    keep = (torch.rand(2, 3, cfg.pmem_size, 1) >= 0.25).to(torch.float64) / 0.75
    mv = layer.scale()[:, None, None] * layer.value_bank
    w = torch.softmax(q @ layer.key_bank.transpose(-1, -2), dim=-1)  # (2, 3, 9, P)
    y_ref = w @ (mv * keep)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (q, layer.key_bank, layer.value_bank, layer.eta), g)
    ref = torch.autograd.grad(y_ref, (q, layer.key_bank, layer.value_bank, layer.eta), g)
    for a, b, name in zip(got, ref, ("q", "key_bank", "value_bank", "eta")):
        assert_close(a, b, rtol=1e-10, what=f"grad {name}")
