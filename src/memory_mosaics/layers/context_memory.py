"""Context memory (C-mem): the Memory Mosaic's replacement for an attention layer.

Every position t stores the pair (k_t, v_t) — a summary of the recent past and what came next — and reads
the pairs already stored, j < t, by Gaussian kernel regression:

    y_t = c_proj( concat_h Σ_{j<t} softmax_j(k_tᵀ k_j) v_j ),      y_0 = 0

Queries are the keys themselves (symmetric kernel, no W_q) and there is no positional encoding.
`mask` (B, T), optional, False at padding: padding never enters the memory (ops/padding.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import ContextMemoryCache, DecodeConstants, GrowingBuffer
from ..config import MosaicConfig
from ..ops.padding import masked_attention, zero_padding
from ..ops.strict_past import strict_past_retrieval, strict_past_retrieval_reference
from .heads import merge_heads, split_heads
from .init import init_linear
from .key_extractor import KeyExtractor
from .value_extractor import ValueExtractor


class ContextMemory(nn.Module):
    def __init__(self, config: MosaicConfig):
        super().__init__()
        self.init, self.n_layer = config.init, config.n_layer
        self.key = KeyExtractor(config, scale_power=1)
        self.value = ValueExtractor(config)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = config.cmem_attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.impl = config.impl
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.key.reset_parameters()
        self.value.reset_parameters()
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k̃, ṽ) = (W_φ x, W_ψ x), each (B, H, T, d_h). The fast path runs both as one GEMM over the weights
        concatenated at compute time (the stored parameters stay two Linears); the reference runs two."""
        if self.impl != "fast":
            return self.key.project(x), self.value.project(x)
        w = self._kv_weight()
        k, v = F.linear(x, w).split(w.shape[0] // 2, dim=-1)
        return split_heads(k, self.key.n_head), split_heads(v, self.value.n_head)

    def _kv_weight(self) -> torch.Tensor:
        """[W_φ; W_ψ] (2d, d): both projections as one GEMM (training fast path and each decoding step)."""
        return torch.cat([self.key.proj.weight, self.value.proj.weight])

    def read(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-head keys and values this layer stores for input x (B, T, d): (k, k, v), each (B, H, T, d_h)."""
        k_raw, v_raw = self.project(x)
        k = self.key.from_projection(k_raw)
        return k, k, self.value.from_projection(v_raw)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.read(zero_padding(x, mask))
        retrieve = strict_past_retrieval if self.impl == "fast" else strict_past_retrieval_reference
        y = retrieve(q, k, v, self.attn_dropout, self.training, key_mask=mask)  # (B, H, T, d_h)
        return self.resid_dropout(self.c_proj(merge_heads(y)))

    # --- cached decoding (generation.py) ---
    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ContextMemoryCache]:
        """Forward over a prompt x (B, T, d) in one parallel pass, returning the output and the cache.
        With a (left-padding) mask the states start at the first real token; pad keys stay stored but unread."""
        x = zero_padding(x, mask)
        k_raw, v_raw = self.project(x)
        k, key_state = self.key.prefill_projected(k_raw)
        v = self.value.from_projection(v_raw)
        y = strict_past_retrieval(k, k, v, key_mask=mask)
        cache = ContextMemoryCache(key_state, GrowingBuffer(k), GrowingBuffer(v[:, :, :-1]), v_raw[:, :, -1:],
                                   self.decode_constants(x.dtype))
        return self.c_proj(merge_heads(y)), cache

    def decode_constants(self, dtype: torch.dtype) -> DecodeConstants:
        lam, key_scale = self.key.decode_constants(dtype)
        gamma = self.value.gamma.to(dtype).view(-1, 1, 1) if self.value.peek else None
        return DecodeConstants(self._kv_weight(), lam, key_scale, gamma, self.value.scale().to(dtype))

    def step(self, x_t: torch.Tensor, cache: ContextMemoryCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One new position x_t (B, 1, d): complete the pending value, read the past, store this position.
        mask (B, t+1), optional: which positions 0..t are real (a stored pad is never read)."""
        c = cache.consts  # set by prefill, the only maker of a v1 cache (v2's memories have no constants)
        k_raw, v_raw = F.linear(x_t, c.weight).split(c.weight.shape[0] // 2, dim=-1)
        k_raw, v_raw = split_heads(k_raw, self.key.n_head), split_heads(v_raw, self.key.n_head)
        q, cache.key_state = self.key.step_projected(k_raw, cache.key_state, c.key_decay, c.key_scale)
        cache.values.append(self.value.mix_with(cache.pending, v_raw, c.gamma, c.value_scale))  # v_{t-1}: x_t known
        if mask is None:
            y = F.scaled_dot_product_attention(q, cache.keys.view(), cache.values.view(), scale=1.0)  # reads j < t
        else:
            y = masked_attention(q, cache.keys.view(), cache.values.view(), mask.bool()[:, None, None, :-1], scale=1.0)
        cache.keys.append(q)
        cache.pending = v_raw
        return self.c_proj(merge_heads(y))
