"""Strict-past retrieval: the context memory's read rule.

The query at time t reads only the pairs j < t:

    y_t = Σ_{j<t} softmax_j(q_tᵀ k_j) v_j,      y_0 = 0 (nothing stored yet)

Why strict: the value v_j peeks at x_{j+1}. For j ≤ t-1 that is at most x_t, which the model may see when it
predicts x_{t+1}; reading j = t would leak the target.

- `strict_past_retrieval_reference`: explicit T×T scores with a j < t mask.
- `strict_past_retrieval`: the fast path. It shifts the sequences by one — queries 1..T-1 against keys and
  values 0..T-2 — so the strict-past mask becomes the ordinary causal one and
  `scaled_dot_product_attention(is_causal=True)` can use its flash / memory-efficient kernels.

Scores carry no 1/√d: the bandwidth is already in the keys (scale=1). q, k, v: (B, H, T, D).
`key_mask` (B, T), optional: False at padding, whose keys are never read (ops/padding.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .padding import masked_attention
from .retrieval import retrieval_weights


def strict_past_mask(t_q: int, t_k: int | None = None, device=None, offset: int = 0) -> torch.Tensor:
    """Boolean (t_q, t_k) mask, True where key j may be read by query i: j < i + offset."""
    t_k = t_q if t_k is None else t_k
    i = torch.arange(t_q, device=device)[:, None] + offset
    j = torch.arange(t_k, device=device)[None, :]
    return j < i


def strict_past_weights(q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, T, T) retrieval weights; row 0 (and any row with only padding before it) is all zeros."""
    allowed = strict_past_mask(q.shape[-2], k.shape[-2], q.device)
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]
    return retrieval_weights(q, k, 1.0, allowed)


def strict_past_retrieval_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, training: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    weights = strict_past_weights(q, k, key_mask)
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def strict_past_retrieval(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, training: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    T = q.shape[-2]
    if key_mask is not None:  # padding: a dense (B, 1, T, T) mask instead of the shifted causal one
        allowed = strict_past_mask(T, k.shape[-2], q.device) & key_mask.bool()[:, None, None, :]
        return masked_attention(q, k, v, allowed, dropout_p if training else 0.0, scale=1.0)
    if T == 1:
        return torch.zeros_like(v)
    y = F.scaled_dot_product_attention(
        q[:, :, 1:], k[:, :, :-1], v[:, :, :-1],
        dropout_p=dropout_p if training else 0.0, is_causal=True, scale=1.0,
    )  # (B, H, T-1, D): row i is position i+1
    return F.pad(y, (0, 0, 1, 0))  # position 0 reads nothing
