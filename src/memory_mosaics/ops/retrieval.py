"""Associative-memory retrieval: Gaussian kernel regression over stored (key, value) pairs.

A memory holds pairs {(k_i, v_i)} and answers a query k with the Nadaraya–Watson estimate of E[V | K = k]:

    f(k) = Σ_i exp(-β ‖k - k_i‖²) v_i / Σ_j exp(-β ‖k - k_j‖²)

When every stored key has the same norm, ‖k‖² and ‖k_i‖² cancel between numerator and denominator and

    f(k) = Σ_i softmax_i(2β kᵀk_i) v_i

which is dot-product attention with no 1/√d factor. Memory Mosaics store unit keys scaled by s_h and absorb
the 2 into the bandwidth, so layers call `retrieve` with the scale already inside the keys (scale=1).

Shapes: queries (..., Tq, D), keys (..., Tk, D), values (..., Tk, Dv); leading dims broadcast.
`mask` is boolean (..., Tq, Tk), True where the pair may be read. A query that may read no pair returns 0.
"""

from __future__ import annotations

import torch


def _softmax_weights(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.softmax(logits, dim=-1)
    weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    # A row with no admissible pair is all -inf -> NaN after softmax; it reads nothing: weight 0.
    return torch.where(mask.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))


def kernel_regression(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    beta: float | torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The explicit Gaussian-kernel estimate, for any key norms. beta broadcasts against (..., Tq, Tk)."""
    sq_dist = (queries.unsqueeze(-2) - keys.unsqueeze(-3)).pow(2).sum(-1)  # (..., Tq, Tk)
    return _softmax_weights(-beta * sq_dist, mask) @ values


def retrieve(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    beta: float | torch.Tensor = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(β qᵀk) v — kernel regression with bandwidth β/2 when keys share one norm."""
    return retrieval_weights(queries, keys, beta, mask) @ values


def retrieval_weights(
    queries: torch.Tensor, keys: torch.Tensor, beta: float | torch.Tensor = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The weights softmax(β qᵀk) themselves (rows that may read nothing are 0), for inspection."""
    return _softmax_weights(beta * (queries @ keys.transpose(-1, -2)), mask)


def key_dropout(values: torch.Tensor, p: float) -> torch.Tensor:
    """Retrieval dropout that keeps attention on a fused kernel: each stored pair (per batch element, head and
    key) is dropped for *all* queries of the sequence, by scaling its value by m/(1-p), m ~ Bernoulli(1-p).

    values: (B, H, Tk, Dv) -> same shape. Σ_j w_ij m_j v_j / (1-p) is dropout on the weights w_ij with the mask
    shared along the query axis instead of drawn per (query, key): the same expectation and per-weight marginal,
    but the mask is correlated across queries. Used by the fast paths on CPU, whose SDPA kernels cannot drop
    weights (with dropout_p > 0 PyTorch falls back to materialising the T×T weights: ~3× slower there). The
    reference paths (`impl="reference"`) and CUDA's fused kernels keep per-weight dropout."""
    B, H, Tk, _ = values.shape
    keep = torch.rand(B, H, Tk, 1, device=values.device) >= p
    return values * (keep.to(values.dtype) / (1.0 - p))


def shared_bank_retrieval(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`retrieve(queries, keys, values)` for banks shared by the whole batch: queries (B, H, T, D), keys (H, P, D),
    values (H, P, Dv) -> (B, H, T, Dv), as one fused attention per head over all B·T queries.

    Every query reads the same bank independently, so their order is free: the queries are flattened in whatever
    order their memory already has — (H, T, B, D) as the leaky average's CPU scan leaves them, or (H, B, T, D) as
    the native key path writes them — and the result is a view back to (B, H, T, Dv), with no copy either way.
    Against attention over the banks expanded to the batch (a view too), this skips the backward pass's
    (B, H, P, D) bank gradients and their sum over B: 23.9 vs 26.7 ms forward + backward at B 8, T 256, H 4,
    P 448, D 32 (one thread)."""
    B, H, T, D = queries.shape
    if queries.permute(1, 2, 0, 3).is_contiguous():  # (H, T, B, D) in memory
        order, shape = (1, 2, 0, 3), (H, T, B, -1)
    else:  # (H, B, T, D); reshape copies only when q is in neither layout
        order, shape = (1, 0, 2, 3), (H, B, T, -1)
    q = queries.permute(order).reshape(1, H, -1, D)
    y = torch.nn.functional.scaled_dot_product_attention(q, keys[None], values[None], scale=1.0)  # (1, H, N, Dv)
    y = y[0].reshape(shape)
    return y.permute(2, 0, 1, 3) if order == (1, 2, 0, 3) else y.transpose(0, 1)
