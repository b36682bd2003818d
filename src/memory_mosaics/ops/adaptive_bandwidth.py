"""Adaptive bandwidth of Memory Mosaics v2 (Eq. 6): the kernel sharpens as the memory fills.

    β = β₁ · n^α + β₀          β₀ ≥ 0, β₁ > 0, 0 < α < 1

n is the number of pairs *the query reads* (ops/windowed_retrieval.py `pairs_read`): t for v1's full past,
min(t, h-1) for a short-term window h, max(0, t-m+1) for a long-term offset m. A query reading nothing has output 0
whatever β, so n is floored at 1 there (0^α would give a NaN gradient for α). This follows the MISE rule
1/√β ∝ n^{-1/(p+4)} (v2 paper, arXiv 2507.03285). Scores are β · k̂_tᵀ k̂_j with unit keys, so the layers fold β into the
query: q_t = β_t · k̂_t.

Parameterisation (v2 Table 6), per head: β₀ = e^{min(θ₀,10)}, β₁ = e^{min(θ₁,10)}, α = min(|θ_α|, 1);
θ₀ = θ₁ = 1.5 (β = 4.48) and θ_α = 1/3 at init.
"""

from __future__ import annotations

import torch

THETA_CAP = 10.0
INIT_THETA_BETA = 1.5
INIT_THETA_ALPHA = 1.0 / 3.0


def bandwidth_coefficients(theta0: torch.Tensor, theta1: torch.Tensor, theta_alpha: torch.Tensor):
    """Stored (H,) parameters -> (β₀, β₁, α), each (H,)."""
    return (torch.exp(theta0.clamp(max=THETA_CAP)), torch.exp(theta1.clamp(max=THETA_CAP)),
            theta_alpha.abs().clamp(max=1.0))


def adaptive_bandwidth(n: torch.Tensor, beta0: torch.Tensor, beta1: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """n (..., T) pair counts (any leading dims broadcasting against heads at dim -2) and (H,) coefficients
    -> β (..., H, T): β₁ n^α + β₀ per head and query position."""
    n = n.to(beta0.dtype).clamp_min(1.0)[..., None, :]  # (..., 1, T)
    return beta1[:, None] * n ** alpha[:, None] + beta0[:, None]
