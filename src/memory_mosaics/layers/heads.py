"""Reshaping between (B, T, d) activations and (B, H, T, d_h) per-head tensors, and per-head scalars."""

from __future__ import annotations

import torch

# Re-exported: the layers import them from here.
from ..ops.normalize import per_head  # noqa: F401
from ..ops.normalize import scaled_l2_normalize_reference as scaled_l2_normalize  # noqa: F401


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, d) -> (B, H, T, d/H)."""
    B, T, d = x.shape
    return x.view(B, T, n_head, d // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_h) -> (B, T, H·d_h)."""
    B, H, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * dh)
