"""Persistent memory (P-mem): the Memory Mosaic's replacement for the MLP.

Each head owns learned banks M_k, M_v ∈ R^{P×d_h} (P = pmem_size), fixed after training. The query is
built like a context-memory key (its own W_φ, leaky average and θ) but scaled by s_h², since the bank keys
carry no scale. Every slot is visible at every position (no mask):

    y_t = c_proj( concat_h α_h Σ_p softmax_p(q_tᵀ M_k[p]) M_v[p] ),    α_h = exp(10·η_h)

`mask` (B, T), optional, False at padding: pad inputs are zeroed before the query's leaky average.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import DecodeConstants, PersistentMemoryCache
from ..config import MosaicConfig
from ..ops.padding import zero_padding
from ..ops.retrieval import key_dropout, retrieve, shared_bank_retrieval
from .heads import merge_heads, split_heads
from .init import init_linear
from .key_extractor import KeyExtractor
from .reparam import actual, stored


class PersistentMemory(nn.Module):
    def __init__(self, config: MosaicConfig):
        super().__init__()
        H, P, dh = config.n_head, config.pmem_size, config.head_dim
        self.init, self.n_layer = config.init, config.n_layer
        self.query = KeyExtractor(config, scale_power=2)
        self.key_bank = nn.Parameter(torch.empty(H, P, dh))  # M_k
        self.value_bank = nn.Parameter(torch.empty(H, P, dh))  # M_v
        self.eta = nn.Parameter(torch.empty(H))
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = config.pmem_attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.impl = config.impl
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Banks N(0, 1/d_h) in both schemes (as in the Library and nanoMosaics); then the query and c_proj."""
        dh = self.key_bank.shape[-1]
        nn.init.normal_(self.key_bank, std=1.0 / math.sqrt(dh))
        nn.init.normal_(self.value_bank, std=1.0 / math.sqrt(dh))
        self.eta.fill_(stored(-0.5))  # α = e^-0.5
        self.query.reset_parameters()
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def scale(self) -> torch.Tensor:
        """α_h (H,)."""
        return torch.exp(actual(self.eta))

    def banks(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(M_k, α·M_v), each (H, P, d_h), in `dtype`: α folded into the value bank."""
        return self.key_bank.to(dtype), self.scale().to(dtype)[:, None, None] * self.value_bank.to(dtype)

    def recall(self, q: torch.Tensor) -> torch.Tensor:
        """Read the banks with queries q (B, H, T, d_h) -> α·Σ_p softmax_p(q M_k[p]) M_v[p], (B, H, T, d_h).
        α scales the value bank (H, P, d_h) rather than the (B, H, T, d_h) output: same result, fewer multiplies."""
        p = self.attn_dropout if self.training else 0.0
        mk, mv = self.banks(q.dtype)  # (H, P, d_h) each
        if self.impl == "fast":
            if p == 0.0:  # all B·T queries of a head against its bank at once (no per-batch bank gradients)
                return shared_bank_retrieval(q, mk, mv)
            B = q.shape[0]  # dropout: the banks expanded to the batch (a view)
            mv = mv.expand(B, -1, -1, -1)
            if not q.is_cuda:  # CPU: slot dropout shared by a sequence's queries (ops.key_dropout)
                mv, p = key_dropout(mv, p), 0.0
            return F.scaled_dot_product_attention(q, mk.expand(B, -1, -1, -1), mv, dropout_p=p, scale=1.0)
        if p > 0.0:
            return F.dropout(torch.softmax(q @ mk.transpose(-1, -2), dim=-1), p=p) @ mv
        return retrieve(q, mk, mv)

    def _read(self, q: torch.Tensor) -> torch.Tensor:
        return self.resid_dropout(self.c_proj(merge_heads(self.recall(q))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._read(self.query(zero_padding(x, mask)))

    # --- cached decoding (generation.py): the only state is the query's leaky average ---
    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, PersistentMemoryCache]:
        q, state = self.query.prefill(zero_padding(x, mask))
        return self._read(q), PersistentMemoryCache(state, self.decode_constants(x.dtype))

    def decode_constants(self, dtype: torch.dtype) -> DecodeConstants:
        """The query's constants and the banks as SDPA reads them, α already in M_v: once per generate call."""
        lam, scale = self.query.decode_constants(dtype)
        mk, mv = self.banks(dtype)
        return DecodeConstants(self.query.proj.weight, lam, scale, bank_k=mk[None].contiguous(), bank_v=mv[None])

    def step(self, x_t: torch.Tensor, cache: PersistentMemoryCache) -> tuple[torch.Tensor, PersistentMemoryCache]:
        """One position x_t (B, 1, d). Eval-mode read (no retrieval dropout), as decoding always is."""
        c = cache.consts
        k = split_heads(F.linear(x_t, c.weight), self.query.n_head)
        q, cache.state = self.query.step_projected(k, cache.state, c.key_decay, c.key_scale)
        B = q.shape[0]
        y = F.scaled_dot_product_attention(q, c.bank_k.expand(B, -1, -1, -1), c.bank_v.expand(B, -1, -1, -1),
                                           scale=1.0)
        return self.resid_dropout(self.c_proj(merge_heads(y))), cache
