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

Retrieval dropout in the fast path: on CUDA, SDPA's own per-weight dropout; on CPU, `key_dropout` (the mask
shared by all queries of a sequence, see ops/retrieval.py), because CPU SDPA with dropout leaves its fused kernel.
The reference (and the padded path) keep per-weight dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .first_order import first_order
from .padding import masked_attention
from .retrieval import key_dropout, retrieval_weights


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


def _cpu_flash_ops():
    """PyTorch's CPU flash-attention forward and backward ops (what SDPA runs on CPU), or None where absent."""
    ops = torch.ops.aten
    if hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu") and hasattr(
            ops, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        return ops._scaled_dot_product_flash_attention_for_cpu, ops._scaled_dot_product_flash_attention_for_cpu_backward
    return None


class _StrictPastSelf(torch.autograd.Function):
    """Strict-past retrieval with the queries equal to the keys (the context memory), on CPU's flash kernel.

    The same shifted causal attention as `strict_past_retrieval`, without autograd through the slices: there, the
    backward pass zero-fills a (B, H, T, D) gradient for each of q[1:], k[:-1] and v[:-1], copies each in and adds
    the two key gradients. Here the key gradient is assembled in one pass, dq_{t-1} + dk_t, straight into the
    keys' memory order (so the normalisation's backward that follows reads matching layouts), and the output is
    written with its zero first row without filling the rest."""

    @staticmethod
    def forward(ctx, k, v):
        fwd, _ = _cpu_flash_ops()
        y, lse = fwd(k[:, :, 1:], k[:, :, :-1], v[:, :, :-1], 0.0, True, scale=1.0)  # (B, H, T-1, D)
        B, H, T, D = v.shape
        out = y.new_empty(B, T, H, D).transpose(1, 2)  # SDPA's (B, T, H, D) order: merge_heads stays a view
        out[:, :, 0] = 0.0
        out[:, :, 1:] = y
        ctx.save_for_backward(k, v, y, lse)
        return out

    @staticmethod
    @first_order
    def backward(ctx, grad):
        k, v, y, lse = ctx.saved_tensors
        _, bwd = _cpu_flash_ops()
        dq, dk, dv = bwd(grad[:, :, 1:], k[:, :, 1:], k[:, :, :-1], v[:, :, :-1], y, lse, 0.0, True, scale=1.0)
        gk = torch.empty_like(k)
        gk[:, :, 0] = dk[:, :, 0]
        torch.add(dq[:, :, :-1], dk[:, :, 1:], out=gk[:, :, 1:-1])
        gk[:, :, -1] = dq[:, :, -1]
        gv = torch.empty_like(v)
        gv[:, :, :-1] = dv
        gv[:, :, -1] = 0.0
        return gk, gv


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
    p = dropout_p if training else 0.0
    if (q is k and p == 0.0 and q.device.type == "cpu" and k.shape[-2] == T
            and torch.is_grad_enabled() and (k.requires_grad or v.requires_grad) and _cpu_flash_ops()
            and not torch.compiler.is_compiling()):
        return _StrictPastSelf.apply(k, v)
    v_read = v[:, :, :-1]
    if p > 0.0 and not q.is_cuda:
        v_read, p = key_dropout(v_read, p), 0.0
    y = F.scaled_dot_product_attention(
        q[:, :, 1:], k[:, :, :-1], v_read, dropout_p=p, is_causal=True, scale=1.0
    )  # (B, H, T-1, D): row i is position i+1
    # Position 0 reads nothing. Padded in (B, T, H, D) order — SDPA's output layout — so the caller's merge_heads
    # is a view, not another copy.
    return F.pad(y.transpose(1, 2), (0, 0, 0, 0, 1, 0)).transpose(1, 2)
