"""Rotary position embeddings (RoFormer; the Llama-style baselines of Memory Mosaics v2).

Each head's d_h channels are split into two halves (x₁, x₂) (GPT-NeoX / Llama layout) and every pair (x₁[i], x₂[i])
is rotated by the angle p·θ_i, θ_i = base^{-2i/d_h}, at position p:

    rot(x)_p = (x₁ cos pθ − x₂ sin pθ,  x₂ cos pθ + x₁ sin pθ)

Queries and keys are rotated before the dot product, so the score depends on positions only through their
difference. Nothing is learned and any position is defined: the transformer with rotary embeddings has no length
limit (how well it extrapolates is what docs/long_context.md measures).
"""

from __future__ import annotations

import torch


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """positions (...,) integer -> cos, sin (..., head_dim/2) in float32 (float64 if positions are float64)."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
    dtype = torch.float64 if positions.dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=dtype) / head_dim)
    angles = positions.to(dtype)[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, d_h); cos/sin (T, d_h/2) or (B, T, d_h/2) -> x rotated, same dtype."""
    if cos.dim() == 3:  # per-sequence positions (padding): broadcast over heads
        cos, sin = cos[:, None], sin[:, None]
    x1, x2 = x.float().chunk(2, dim=-1) if x.dtype != torch.float64 else x.chunk(2, dim=-1)
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return out.to(x.dtype)
