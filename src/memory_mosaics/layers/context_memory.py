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

from ..cache import ContextMemoryCache, GrowingBuffer
from ..config import MosaicConfig
from ..ops.padding import masked_attention, zero_padding
from ..ops.strict_past import strict_past_retrieval, strict_past_retrieval_reference
from .heads import merge_heads
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

    def read(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-head keys and values this layer stores for input x (B, T, d): (k, k, v), each (B, H, T, d_h)."""
        k = self.key(x)
        return k, k, self.value(x)

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
        k, key_state = self.key.prefill(x)
        v_raw = self.value.project(x)
        v = self.value.from_projection(v_raw)
        y = strict_past_retrieval(k, k, v, key_mask=mask)
        cache = ContextMemoryCache(key_state, GrowingBuffer(k), GrowingBuffer(v[:, :, :-1]), v_raw[:, :, -1:])
        return self.c_proj(merge_heads(y)), cache

    def step(self, x_t: torch.Tensor, cache: ContextMemoryCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One new position x_t (B, 1, d): complete the pending value, read the past, store this position.
        mask (B, t+1), optional: which positions 0..t are real (a stored pad is never read)."""
        q, cache.key_state = self.key.step(x_t, cache.key_state)
        v_raw = self.value.project(x_t)
        cache.values.append(self.value.mix(cache.pending, v_raw))  # v_{t-1} now that x_t is known
        if mask is None:
            y = F.scaled_dot_product_attention(q, cache.keys.view(), cache.values.view(), scale=1.0)  # reads j < t
        else:
            y = masked_attention(q, cache.keys.view(), cache.values.view(), mask.bool()[:, None, None, :-1], scale=1.0)
        cache.keys.append(q)
        cache.pending = v_raw
        return self.c_proj(merge_heads(y))
