import math

import pytest
import torch

from memory_mosaics.moons.optim import MLXAdamW, linear_decay


def test_two_steps_by_hand_no_bias_correction():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    opt = MLXAdamW([p], lr=0.1, betas=(0.9, 0.999), eps=2e-8, weight_decay=0.0)
    grads = [torch.tensor([0.3, -1.0, 0.0], dtype=torch.float64), torch.tensor([0.1, 2.0, 4.0], dtype=torch.float64)]
    expect = [1.0, -2.0, 0.5]
    m = [0.0] * 3
    v = [0.0] * 3
    for g in grads:
        p.grad = g.clone()
        opt.step()
        for i in range(3):
            m[i] = 0.9 * m[i] + 0.1 * g[i].item()
            v[i] = 0.999 * v[i] + 0.001 * g[i].item() ** 2
            expect[i] -= 0.1 * m[i] / (math.sqrt(v[i]) + 2e-8)
        assert p.detach().tolist() == pytest.approx(expect, rel=1e-12)
    # first step of a unit gradient moves lr·0.1/√0.001 ≈ 3.16·lr, not lr as bias-corrected Adam would
    q = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    q.grad = torch.ones(1, dtype=torch.float64)
    o = MLXAdamW([q], lr=1.0)
    o.step()
    assert q.item() == pytest.approx(-0.1 / math.sqrt(0.001), rel=1e-6)


def test_decoupled_weight_decay():
    p = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = MLXAdamW([p], lr=0.5, weight_decay=0.1)
    p.grad = torch.tensor([0.0], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(2.0 * (1 - 0.05))


def test_bad_settings():
    with pytest.raises(ValueError):
        MLXAdamW([torch.nn.Parameter(torch.zeros(1))], lr=-1.0)


def test_linear_decay_like_mlx_schedule():
    assert linear_decay(0) == 1e-2
    assert linear_decay(250) == pytest.approx((1e-2 + 5e-6) / 2)
    assert linear_decay(499) == pytest.approx(1e-2 + 499 * (5e-6 - 1e-2) / 500)
    assert linear_decay(500) == linear_decay(900) == 5e-6
    lrs = [linear_decay(i) for i in range(500)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
