"""Padding masks for batches of left-padded prompts (Hugging Face `attention_mask`).

`mask` is (B, T), True (or 1) at real tokens and False at padding. Padding must leave the real tokens' outputs
exactly as if the row had no padding, so in a Memory Mosaic a pad position never enters a memory:
- its input is zeroed before the leaky averages (key extractor, persistent-memory query): with left padding the
  first real token starts from a zero state, as it would alone;
- its key is never read (the value stored at the last pad peeks at the first real token; it must stay unread);
- a query with no admissible key (a pad, or the first real token) reads nothing: 0, as y_0 = 0 alone.
Interior holes are excluded from retrieval too, but the leaky average still decays across them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x (B, T, d) with the padded positions of mask (B, T) set to 0 (x itself when mask is None)."""
    return x if mask is None else x * mask[:, :, None].to(x.dtype)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
                     dropout_p: float = 0.0, scale: float | None = None) -> torch.Tensor:
    """scaled_dot_product_attention with a boolean mask `allowed` (B, 1, Tq, Tk), True where a query may read a key.
    A row that may read nothing returns 0 instead of SDPA's NaN (it attends everywhere, then is zeroed, so its
    gradient is 0 too)."""
    empty = ~allowed.any(dim=-1, keepdim=True)  # (B, 1, Tq, 1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | empty, dropout_p=dropout_p, scale=scale)
    return y.masked_fill(empty, 0.0)
