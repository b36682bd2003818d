import math

import numpy as np
import pytest
import torch

from memory_mosaics.moons import data as D


def test_spec_constants():
    assert D.DELTA == pytest.approx(0.0225)
    assert D.MAX_START == 8399
    steps = {0.5: 22.2, 1: 44.4, 1.5: 66.7, 2: 88.9, 2.5: 111.1, 3: 133.3, 3.5: 155.6, 6: 266.7}
    for p, s in steps.items():
        assert round(D.to_steps(p), 1) == s


def test_triples_and_joint_periods():
    assert [D.joint_period(t) for t in D.TRAIN_TRIPLES] == [2, 3, 3, 3, 3, 5, 6, 6]
    assert D.joint_period(D.VAL_TRIPLE) == 6
    assert D.VAL_TRIPLE not in D.TRAIN_TRIPLES and D.TRAIN_PANEL_TRIPLE in D.TRAIN_TRIPLES
    # the 9 kept triples are the 9 with the smallest joint periods (ties at 6 decided by the reference order)
    kept = set(D.TRAIN_TRIPLES) | {D.VAL_TRIPLE}
    everything = D.all_triples()
    assert len(everything) == 35 and len(kept) == 9
    assert max(j for t, j in everything if t in kept) <= min(j for t, j in everything if t not in kept)
    assert D.lcm_float(1.5, 2.5) == 7.5


def test_observation_formula_and_shift():
    rng = np.random.default_rng(3)
    x, y = D.triple_windows(D.VAL_TRIPLE, 2, rng, block=50)
    assert x.shape == y.shape == (2, 50, 6) and x.dtype == torch.float32
    assert torch.equal(x[:, 1:], y[:, :-1])
    start = np.random.default_rng(3).integers(0, D.MAX_START, size=2)[0]
    n = start + 7
    for i, p in enumerate(D.VAL_TRIPLE):
        phi = 2 * math.pi * n * D.DELTA / p + 0.3
        # float32 storage of values of magnitude ≤ 1: error ≤ 2^-24 ≈ 6e-8 (an absolute bound on the unit circle).
        assert x[0, 7, 2 * i].item() == pytest.approx(math.sin(phi), abs=1e-6)
        assert x[0, 7, 2 * i + 1].item() == pytest.approx(math.cos(phi), abs=1e-6)


def test_observer_planet_subtracts_last_moon():
    starts = np.array([11])
    sun, planet = D.observe(D.VAL_TRIPLE, starts, 5, "sun"), D.observe(D.VAL_TRIPLE, starts, 5, "planet")
    # Differences of values of magnitude ≤ 1, each stored in float32: error ≤ 3 · 2^-24 ≈ 1.8e-7 whatever the CPU.
    assert torch.allclose(planet[..., :4], sun[..., :4] - sun[..., 4:].repeat(1, 1, 2), rtol=0, atol=1e-6)
    assert torch.equal(planet[..., 4:], sun[..., 4:])
    with pytest.raises(ValueError, match="observer"):
        D.observe(D.VAL_TRIPLE, starts, 5, "moon")


def test_train_batch_deterministic_and_uses_train_triples():
    a = D.train_batch(np.random.default_rng(7), batch=8, block=40)
    b = D.train_batch(np.random.default_rng(7), batch=8, block=40)
    c = D.train_batch(np.random.default_rng(8), batch=8, block=40)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # each element is some train triple's window: the x_{n+1} of moon i is x_n rotated by 2πΔ/p_i
    x = a[0].double()
    for row in x:
        s, cs = row[:, 0::2], row[:, 1::2]  # (T, 3)
        ang = torch.atan2(s[1:] * cs[:-1] - cs[1:] * s[:-1], s[1:] * s[:-1] + cs[1:] * cs[:-1])  # rotation ω = 2πΔ/p
        periods = tuple(round(float(2 * math.pi * D.DELTA / a_), 6) for a_ in ang[0])
        assert any(all(abs(p - q) < 1e-3 for p, q in zip(periods, t)) for t in D.TRAIN_TRIPLES)
