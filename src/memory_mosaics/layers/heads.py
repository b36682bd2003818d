"""Reshaping between (B, T, d) activations and (B, H, T, d_h) per-head tensors, and per-head scalars."""

from __future__ import annotations

import torch


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, d) -> (B, H, T, d/H)."""
    B, T, d = x.shape
    return x.view(B, T, n_head, d // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_h) -> (B, T, H·d_h)."""
    B, H, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * dh)


def per_head(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View an (H,) parameter so it broadcasts over a (B, H, ...) tensor."""
    return p.view(p.shape[0], *([1] * (like.dim() - 2)))


def scaled_l2_normalize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale_h · Norm(x) for (B, H, ..., D) x and (H,) scale. Folding the scale into the 1/‖x‖ factor makes it a
    single full-size multiply (and the scale's gradient a reduction over (B, H, T, 1), not (B, H, T, D))."""
    # In float32: in fp16 the 1e-12 floor would round to 0 and a zero vector would give 0·inf = NaN
    # (the last value when γ = 0). For float32 inputs .float() is free.
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    inv_norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).clamp_min(1e-12).reciprocal()
    return (xf * (per_head(scale.to(xf.dtype), xf) * inv_norm)).to(x.dtype)
