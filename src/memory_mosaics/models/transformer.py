"""GPT-2 baseline (nanoGPT-style), same interface as MemoryMosaic.

Learned absolute positions, pre-LN, causal softmax attention with 1/√d_h, GELU MLP of width 4d, no biases,
tied embeddings, no logit scaling. Init (config.init, layers/init.py) "gpt2": N(0, 0.02); c_proj
N(0, 0.02/√(2·n_layer)). init="library" gives it the Memory Mosaic's Library init and 1/√d head instead (the
position table drawn like the embedding). Dropout on the embedding sum, the attention probabilities and the
residual outputs.
`positions="rotary"` drops the table for rotary embeddings on q and k (ops/rotary.py) and `"none"` uses no positions:
both accept any length (the long-context baselines, docs/long_context.md).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import GrowingBuffer, KVCache
from ..config import TransformerConfig
from ..layers import MLP
from ..layers.heads import merge_heads, split_heads
from ..layers.init import embedding_std, init_linear, logit_scale
from ..ops.padding import masked_attention
from ..ops.rotary import apply_rotary, rotary_angles
from .base import CausalLM


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.init, self.n_layer = config.init, config.n_layer
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.rotary, self.rope_base = config.positions == "rotary", config.rope_base
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_linear(self.c_attn, self.init, self.n_layer)
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def qkv(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """positions (T,) or (B, T): the tokens' positions, used by rotary embeddings only."""
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=2)
        q, k, v = split_heads(q, self.n_head), split_heads(k, self.n_head), split_heads(v, self.n_head)
        if self.rotary:
            cos, sin = rotary_angles(positions, q.shape[-1], self.rope_base)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    @staticmethod
    def positions(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Positions of x's T tokens from 0: (T,), or (B, T) counting real tokens only under a padding mask."""
        if mask is None:
            return torch.arange(x.shape[1], device=x.device)
        return (mask.long().cumsum(-1) - 1).clamp_min(0)

    def attend(self, q, k, v, mask: torch.Tensor | None, dropout_p: float = 0.0) -> torch.Tensor:
        """Causal attention; mask (B, T), optional, False at padding, whose keys are never read."""
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        T = q.shape[2]
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        return masked_attention(q, k, v, causal & mask.bool()[:, None, None, :], dropout_p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x, self.positions(x, mask))
        y = self.attend(q, k, v, mask, self.attn_dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(merge_heads(y)))

    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        q, k, v = self.qkv(x, self.positions(x, mask))
        y = self.attend(q, k, v, mask)
        return self.c_proj(merge_heads(y)), KVCache(GrowingBuffer(k), GrowingBuffer(v))

    def step(self, x_t: torch.Tensor, cache: KVCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask (B, t+1), optional: which positions 0..t are real (the new token t always is)."""
        t = torch.tensor([len(cache.keys)], device=x_t.device) if mask is None else mask.long().sum(-1, keepdim=True) - 1
        q, k, v = self.qkv(x_t, t)
        cache.keys.append(k)
        cache.values.append(v)
        attn_mask = None if mask is None else mask.bool()[:, None, None, :]
        y = F.scaled_dot_product_attention(q, cache.keys.view(), cache.values.view(), attn_mask=attn_mask)
        return self.c_proj(merge_heads(y))


class TransformerBlock(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=False)
        self.mlp = MLP(config.n_embd, 4 * config.n_embd, config.dropout, config.init, config.n_layer)

    def reset_parameters(self) -> None:
        for module in (self.ln_1, self.attn, self.ln_2, self.mlp):
            module.reset_parameters()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))

    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        y, cache = self.attn.prefill(self.ln_1(x), mask)
        x = x + y
        return x + self.mlp(self.ln_2(x)), cache

    def step(self, x_t: torch.Tensor, cache: KVCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        x_t = x_t + self.attn.step(self.ln_1(x_t), cache, mask)
        return x_t + self.mlp(self.ln_2(x_t))


class Transformer(CausalLM):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":  # rotary / none: no table, any length (max_context None)
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.logit_scale = logit_scale(config.init, config.n_embd)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every tensor (config.init): the embeddings first, as in nanoGPT, then each block."""
        std = embedding_std(self.config.init, self.config.n_embd)
        nn.init.normal_(self.wte.weight, std=std)
        if hasattr(self, "wpe"):  # learned positions only
            nn.init.normal_(self.wpe.weight, std=std)
        for block in self.blocks:
            block.reset_parameters()
        self.ln_f.reset_parameters()

    @property
    def max_context(self) -> int | None:
        """The position table's length; None (unbounded) for rotary / none positions, which read past block_size."""
        return self.config.block_size if self.config.positions == "learned" else None

    def check_length(self, T: int) -> None:
        if self.max_context is not None and T > self.max_context:
            raise ValueError(
                f"sequence length {T} exceeds the transformer's position table (block_size={self.config.block_size})"
            )

    def embed(self, idx: torch.Tensor, start: int = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token plus learned position embeddings for positions start .. start+T-1. With a padding mask (B, ≥ start+T)
        a row's positions count its real tokens only, so a left-padded prompt starts at position 0. Without a table
        (rotary / none) the token embedding alone."""
        if not hasattr(self, "wpe"):
            return self.wte(idx)
        if mask is None:
            return self.wte(idx) + self.wpe(torch.arange(start, start + idx.shape[1], device=idx.device))
        pos = (mask.long().cumsum(-1) - 1).clamp_min(0)[:, start:start + idx.shape[1]]  # (B, T)
        return self.wte(idx) + self.wpe(pos)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids with T ≤ block_size -> logits (B, T, vocab_size). mask (B, T), optional: False at
        padding (positions then count real tokens only)."""
        self.check_tokens(idx)
        self.check_length(idx.shape[1])
        mask = self.check_mask(mask, idx)
        x = self.drop(self.embed(idx, 0, mask))
        for block in self.blocks:
            x = block(x, mask)
        return self.logits(x)
