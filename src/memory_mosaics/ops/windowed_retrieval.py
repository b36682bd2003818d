"""Retrieval over a band of lags: the short-term and long-term memories of Memory Mosaics v2.

Query t reads the pairs j with  min_lag ≤ t - j ≤ max_lag  (max_lag None = no upper limit):

    y_t = Σ_j softmax_j(q_tᵀ k_j) v_j  over those j,      y_t = 0 when there is none

- v1's context memory (ops/strict_past.py):  min_lag = 1, max_lag = None            (j ≤ t-1)
- v2 short-term memory, window h:            min_lag = 1, max_lag = h - 1         (j ∈ [t-h+1, t-1], v2 Eq. 10)
- v2 long-term memory, offset m:             min_lag = m, max_lag = None          (j ≤ t-m)

The off-by-one (v2 paper, arXiv 2507.03285): we follow Eq. 10, t-h+1 … t-1. h counts the query's own position, so the
window [t-h+1, t] holds h positions of which the query reads the h-1 strictly past ones (App. C's t-h … t-1 would
read h). min_lag ≥ 1 always: the value at j peeks at x_{j+1}, so j = t would leak the target.

- `windowed_retrieval_reference`: explicit (T, T) scores with the lag mask.
- `windowed_retrieval`: the fast path on scaled_dot_product_attention. With no upper lag the band is causal after a
  shift by min_lag (queries min_lag..T-1 against keys 0..T-1-min_lag, `is_causal=True`: flash-eligible). With an
  upper lag it is block-banded: queries in blocks of c = max_lag + 1 read a window of c + max_lag keys (an unfold, no
  copy of the whole T×T), with the band mask inside the window: O(T·h) instead of O(T²). Short inputs use the dense
  (T, T) band mask directly.

Scores carry no 1/√d: the bandwidth is already in the queries (scale=1). q, k, v: (B, H, T, D).
`key_mask` (B, T), optional: False at padding, whose keys are never read (ops/padding.py). Lags are differences of
positions, so a left-padded row reads the same pairs as the row alone once the pad keys are masked; the padded path
is the dense (T, T) band mask (prompts only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .padding import masked_attention
from .retrieval import retrieval_weights


def lag_mask(t_q: int, t_k: int, min_lag: int, max_lag: int | None = None, q_start: int = 0,
             device=None) -> torch.Tensor:
    """Boolean (t_q, t_k), True where query q_start+i may read key j: min_lag ≤ q_start + i - j ≤ max_lag."""
    lag = (torch.arange(t_q, device=device)[:, None] + q_start) - torch.arange(t_k, device=device)[None, :]
    allowed = lag >= min_lag
    return allowed if max_lag is None else allowed & (lag <= max_lag)


def pairs_read(positions: torch.Tensor, min_lag: int, max_lag: int | None = None) -> torch.Tensor:
    """How many pairs the query at each position reads: #{j ≥ 0 : min_lag ≤ t - j ≤ max_lag}. Integer tensor."""
    first = torch.zeros_like(positions) if max_lag is None else (positions - max_lag).clamp_min(0)
    return (positions - min_lag - first + 1).clamp_min(0)


def pairs_read_masked(key_mask: torch.Tensor, min_lag: int, max_lag: int | None = None) -> torch.Tensor:
    """`pairs_read` with padding: how many *real* pairs each query reads, #{j : min_lag ≤ t-j ≤ max_lag, mask_j}.
    key_mask (B, T) -> (B, T) integers. For a left-padded row this is pairs_read of the positions counted from the
    first real token, i.e. what the row alone reads."""
    T = key_mask.shape[-1]
    c = F.pad(key_mask.long().cumsum(-1), (1, 0))  # c[i] = real keys among positions < i
    t = torch.arange(T, device=key_mask.device)
    hi = (t - min_lag + 1).clamp(0, T)  # keys j ≤ t - min_lag
    lo = torch.zeros_like(t) if max_lag is None else (t - max_lag).clamp(0, T)  # keys j ≥ t - max_lag
    return (c[..., hi] - c[..., lo]).clamp_min(0)


def _allowed(t_q: int, t_k: int, min_lag: int, max_lag: int | None, key_mask: torch.Tensor | None,
             device) -> torch.Tensor:
    """The lag band (t_q, t_k), and with padding (B, 1, t_q, t_k) without the pad keys."""
    band = lag_mask(t_q, t_k, min_lag, max_lag, device=device)
    return band if key_mask is None else band & key_mask.bool()[:, None, None, :]


def _check_lags(min_lag: int, max_lag: int | None) -> None:
    if min_lag < 1:
        raise ValueError(f"min_lag must be ≥ 1 (reading j = t leaks the target through the value's peek), got {min_lag}")
    if max_lag is not None and max_lag < min_lag:
        raise ValueError(f"max_lag ({max_lag}) must be ≥ min_lag ({min_lag})")


def windowed_retrieval_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, min_lag: int,
                                 max_lag: int | None = None, dropout_p: float = 0.0,
                                 training: bool = False, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    _check_lags(min_lag, max_lag)
    weights = retrieval_weights(q, k, 1.0, _allowed(q.shape[-2], k.shape[-2], min_lag, max_lag, key_mask, q.device))
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def windowed_retrieval(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, min_lag: int, max_lag: int | None = None,
                       dropout_p: float = 0.0, training: bool = False,
                       key_mask: torch.Tensor | None = None) -> torch.Tensor:
    _check_lags(min_lag, max_lag)
    T = q.shape[-2]
    p = dropout_p if training else 0.0
    if key_mask is not None:  # padding: the dense band without the pad keys
        return masked_attention(q, k, v, _allowed(T, k.shape[-2], min_lag, max_lag, key_mask, q.device), p, scale=1.0)
    if max_lag is not None:
        if T <= 2 * (max_lag + 1) or k.shape[-2] != T:
            return masked_attention(q, k, v, lag_mask(T, k.shape[-2], min_lag, max_lag, device=q.device), p, scale=1.0)
        return _banded(q, k, v, min_lag, max_lag, p)
    if T <= min_lag:  # no query reads anything yet
        return torch.zeros_like(v[:, :, :T])
    y = F.scaled_dot_product_attention(q[:, :, min_lag:], k[:, :, :T - min_lag], v[:, :, :T - min_lag],
                                       dropout_p=p, is_causal=True, scale=1.0)  # row i is position i + min_lag
    return F.pad(y, (0, 0, min_lag, 0))


def _banded(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, min_lag: int, max_lag: int,
            dropout_p: float) -> torch.Tensor:
    """Block-banded retrieval: query block b (positions b·c .. b·c+c-1, c = max_lag + 1) reads keys
    b·c - max_lag .. b·c + c - 1 (W = c + max_lag of them); lags outside [min_lag, max_lag] and keys before 0 masked."""
    B, H, T, D = q.shape
    c = max_lag + 1
    n = -(-T // c)
    W = c + max_lag
    qb = F.pad(q, (0, 0, 0, n * c - T)).view(B, H, n, c, D)
    # Keys/values padded by max_lag in front (negative positions, masked) and to n·c at the end; windows of W, step c.
    kw, vw = (F.pad(t, (0, 0, max_lag, n * c - T)).unfold(2, W, c).transpose(-1, -2) for t in (k, v))  # (B,H,n,W,D)
    i = torch.arange(c, device=q.device)[:, None]
    w = torch.arange(W, device=q.device)[None, :]
    lag = i + max_lag - w  # (c, W): same in every block
    band = (lag >= min_lag) & (lag <= max_lag)
    j = torch.arange(n, device=q.device)[:, None] * c - max_lag + torch.arange(W, device=q.device)  # (n, W)
    allowed = band[None] & (j >= 0)[:, None, :]  # (n, c, W)
    y = masked_attention(qb, kw, vw, allowed, dropout_p, scale=1.0)  # (B, H, n, c, D)
    return y.reshape(B, H, n * c, D)[:, :, :T]
