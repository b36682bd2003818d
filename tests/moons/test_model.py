import numpy as np
import pytest
import torch

from memory_mosaics.analysis import context_retrievals
from memory_mosaics.moons.data import VAL_TRIPLE, triple_windows
from memory_mosaics.moons.evaluate import generation_errors
from memory_mosaics.moons.model import BETA, ComplexLinear, MoonsMemory
from tests.helpers import assert_close


def windows(n=3, block=120, seed=0):
    return triple_windows(VAL_TRIPLE, n, np.random.default_rng(seed), block)[0]


@pytest.mark.parametrize("heads", [1, 3])
def test_exactly_54_parameters(heads):
    m = MoonsMemory(heads)
    assert m.num_params() == 54
    assert m.n_head * (6 // m.n_head) == 6


def test_bad_heads_and_input():
    with pytest.raises(ValueError, match="n_head"):
        MoonsMemory(2)  # head dim 3 is not a complex coordinate
    with pytest.raises(ValueError, match="observations"):
        MoonsMemory(3)(torch.zeros(2, 10, 4))


def test_complex_structure_is_multiplication_by_complex_numbers():
    torch.manual_seed(0)
    lin = ComplexLinear(6, 6).double()  # float64: two summation orders differ by ~1e-16, far below rtol anywhere
    W = lin.weight.detach()
    for i in range(3):
        for j in range(3):
            a, c = W[2 * i, 2 * j], W[2 * i, 2 * j + 1]
            assert torch.equal(W[2 * i:2 * i + 2, 2 * j:2 * j + 2], torch.stack([torch.stack([a, c]), torch.stack([-c, a])]))
    # as a complex matrix Z with Z_ij = a_ij − i·c_ij acting on z = s + i·c_pair: y = x Wᵀ
    x = torch.randn(5, 6, dtype=torch.float64)
    y = lin(x).detach()
    Z = torch.complex(lin.a, -lin.c).detach()
    z = torch.complex(x[:, 0::2], x[:, 1::2])
    yz = z @ Z.T
    assert_close(torch.stack([yz.real, yz.imag], -1).reshape(5, 6), y, 1e-12, what="complex product")
    # the magnitudes scale rotated inputs: |W| is invariant to a phase on every moon
    assert torch.allclose(lin.magnitude(), Z.abs())


def test_complex_init_projects_uniform_draw_like_the_reference():
    torch.manual_seed(1)
    lin = ComplexLinear(6, 6)
    torch.manual_seed(1)
    w = torch.empty(3, 2, 3, 2).uniform_(-6 ** -0.5, 6 ** -0.5).reshape(6, 6)
    # the reference's complexify: halve, then average the diagonal pair and antisymmetrise the off-diagonal pair
    w = w * 0.5
    w[0::2, 0::2] += w[1::2, 1::2].clone()
    w[0::2, 1::2] -= w[1::2, 0::2].clone()
    w[1::2, 0::2] = -w[0::2, 1::2]
    w[1::2, 1::2] = w[0::2, 0::2]
    assert_close(lin.weight.detach(), w, 1e-6, what="init")
    assert lin.weight.abs().max() <= 6 ** -0.5


@pytest.mark.parametrize("heads", [1, 3])
def test_fast_retrieval_matches_reference_and_is_strict_past(heads):
    torch.manual_seed(2)
    m = MoonsMemory(heads)
    x = windows(block=90)
    y = m(x)
    assert_close(y, m(x, reference=True), 1e-5, what="SDPA vs explicit")
    assert torch.equal(y[:, 0], torch.zeros_like(y[:, 0]))
    p = 40
    x2 = x.clone()
    x2[:, p] += 0.5
    changed = (m(x2) - y).abs().amax(dim=(0, 2)) > 0
    assert not changed[:p].any() and changed[p:].all()


def test_beta_is_fixed_at_50():
    torch.manual_seed(3)
    m = MoonsMemory(1).double()  # β = 50 scores: float64 keeps round-off 10^6 below rtol on any CPU
    x = windows(1, 12).double()
    k = m.key(x)[0]
    (r,) = context_retrievals(m, x)  # the library's one way to get retrieval weights
    att = r.weights[0, 0]
    t = 7
    expect = torch.softmax(BETA * k[:t] @ k[t], 0)
    assert_close(att[t, :t], expect, 1e-10, what="weights")
    assert att[t, t:].abs().max() == 0
    assert_close(r.reconstruct(m), m(x), 1e-10, what="weights @ values -> W_z reproduces the output")


@pytest.mark.parametrize("heads", [1, 3])
def test_cached_generation_matches_full_recomputation(heads):
    torch.manual_seed(4)
    m = MoonsMemory(heads)
    x = windows(4, 200, seed=1)
    with torch.no_grad():
        for c in (1, 2, 97):
            cached = m.generate(x[:, :c], 30)
            full = m.generate(x[:, :c], 30, use_cache=False)
            assert cached.shape == (4, 30, 6)
            assert_close(cached, full, 1e-5, what=f"context {c}")


def test_evaluation_fast_path_matches_plain_generation():
    torch.manual_seed(5)
    m = MoonsMemory(3)
    x = windows(3, 80, seed=2)
    contexts = [1, 17, 50]
    errs = generation_errors(m, x, contexts, steps=(5, 25))
    for c, e5, e25 in zip(contexts, errs[5], errs[25]):
        gen = m.generate(x[:, :c], 25, use_cache=False)
        truth = x[:, c:c + 25]
        # Mean |error| of an untrained model: O(0.1) or more, never near 0, so a relative tolerance suffices.
        assert e5 == pytest.approx((gen[:, :5] - truth[:, :5]).abs().mean().item(), rel=1e-4)
        assert e25 == pytest.approx((gen - truth).abs().mean().item(), rel=1e-4)


@pytest.mark.parametrize("heads", [1, 3])
def test_training_gradients_match_reference_path(heads):
    from memory_mosaics.moons.train import clipped_loss

    torch.manual_seed(6)
    m = MoonsMemory(heads)
    x, y = triple_windows(VAL_TRIPLE, 2, np.random.default_rng(4), 150)
    grads = []
    for ref in (False, True):
        m.zero_grad()
        clipped_loss(m(x, reference=ref), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert_close(grads[0], grads[1], 1e-4, what="gradients")
