"""The context memories of Memory Mosaics v2 (v2 paper, arXiv 2507.03285): short-term and long-term, concatenated, W_o.

    short-term:  y^s_t = Σ_{j ∈ [t-h+1, t-1]} softmax_j(q_tᵀ k_j) v_j        (h = short_window)
    long-term:   y^l_t = Σ_{j ≤ t-m}          softmax_j(q_tᵀ k_j) v_j        (m = long-term offset)
    output:      c_proj( concat(y^s, y^l) )                                  (W_o: 2d -> d)

The third level, the persistent memory, is the block's SwiGLU (`ffn="swiglu"`, models/mosaic.py).

Choices where the paper is silent (documented in docs/long_context.md):
- each memory has its own key extractor, value extractor and bandwidth over the full width d with n_head heads
  (v2's parameter counts drop by ~1.6 B of 9.9 B without long-term memory: the memory owns real weights);
- the off-by-one in h follows Eq. 10 (ops/windowed_retrieval.py);
- m ~ U[long_offset_min, long_offset_max] (integers, inclusive) is drawn afresh by every layer at every training
  forward pass (one m for the whole batch); in eval mode, prefill and decoding m = long_offset.
Each memory's keys are unit vectors and its query carries β = β₁ n^α + β₀ when `adaptive_bandwidth`, otherwise the
keys carry v1's s_h (β = s_h²). With no window and no long-term memory there is one memory over j ≤ t-1 and, with
every switch off, this layer computes exactly v1's ContextMemory (tested).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import ContextMemoryCache, GrowingBuffer
from ..config import MosaicConfig
from ..ops.adaptive_bandwidth import INIT_THETA_ALPHA, INIT_THETA_BETA, adaptive_bandwidth, bandwidth_coefficients
from ..ops.windowed_retrieval import pairs_read, windowed_retrieval, windowed_retrieval_reference
from .gated_key_extractor import GatedKeyExtractor
from .heads import merge_heads
from .init import init_linear
from .reparam import stored
from .value_extractor import ValueExtractor


class WindowedMemory(nn.Module):
    """One context memory; which lags it reads is given per call (the long-term offset varies in training)."""

    def __init__(self, config: MosaicConfig):
        super().__init__()
        H = config.n_head
        self.adaptive = config.adaptive_bandwidth
        self.key = GatedKeyExtractor(config.n_embd, H, gated=config.key_gate, scaled=not self.adaptive,
                                     impl=config.impl, chunk=config.scan_chunk)
        self.value = ValueExtractor(config)
        if self.adaptive:
            self.theta_beta0 = nn.Parameter(torch.empty(H))
            self.theta_beta1 = nn.Parameter(torch.empty(H))
            self.theta_alpha = nn.Parameter(torch.empty(H))
        self.attn_dropout = config.cmem_attn_dropout
        self.impl = config.impl
        self.init, self.n_layer = config.init, config.n_layer
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The key extractor's Linears (W_φ, W_g, W_λ) by the config's init scheme, the value extractor, and the
        per-head scalars this layer adds (v2 Table 6). `v2_init=True` redraws the Linears afterwards (layers/v2_init.py)."""
        for linear in self.key.modules():
            if isinstance(linear, nn.Linear):
                init_linear(linear, self.init, self.n_layer)
        self.value.reset_parameters()
        if self.adaptive:
            self.theta_beta0.fill_(INIT_THETA_BETA)
            self.theta_beta1.fill_(INIT_THETA_BETA)
            self.theta_alpha.fill_(INIT_THETA_ALPHA)
        if self.key.gated:
            return
        self.key.rho.copy_(stored(torch.linspace(0.5, 5.0, self.key.n_head)))
        if self.key.scaled:
            self.key.theta.fill_(stored(1.0))

    def queries(self, k: torch.Tensor, positions: torch.Tensor, min_lag: int, max_lag: int | None) -> torch.Tensor:
        """k (B, H, T, d_h) at query positions (T,) -> q: β_t·k_t (adaptive bandwidth) or k itself (β = s_h²)."""
        if not self.adaptive:
            return k
        coeffs = bandwidth_coefficients(self.theta_beta0, self.theta_beta1, self.theta_alpha)
        beta = adaptive_bandwidth(pairs_read(positions, min_lag, max_lag), *coeffs)  # (H, T)
        return beta.to(k.dtype)[..., None] * k

    def forward(self, x: torch.Tensor, min_lag: int, max_lag: int | None) -> torch.Tensor:
        """x (B, T, d) -> (B, H, T, d_h)."""
        k, v = self.key(x), self.value(x)
        q = self.queries(k, torch.arange(x.shape[1], device=x.device), min_lag, max_lag)
        retrieve = windowed_retrieval if self.impl == "fast" else windowed_retrieval_reference
        return retrieve(q, k, v, min_lag, max_lag, self.attn_dropout, self.training)

    def prefill(self, x: torch.Tensor, min_lag: int, max_lag: int | None) -> tuple[torch.Tensor, ContextMemoryCache]:
        k, key_state = self.key.prefill(x)
        v_raw = self.value.project(x)
        v = self.value.from_projection(v_raw)
        q = self.queries(k, torch.arange(x.shape[1], device=x.device), min_lag, max_lag)
        y = windowed_retrieval(q, k, v, min_lag, max_lag)
        return y, ContextMemoryCache(key_state, GrowingBuffer(k), GrowingBuffer(v[:, :, :-1]), v_raw[:, :, -1:])

    def step(self, x_t: torch.Tensor, cache: ContextMemoryCache, min_lag: int, max_lag: int | None) -> torch.Tensor:
        """x_t (B, 1, d) at position t = number of stored keys -> (B, H, 1, d_h); reads j ∈ [t-max_lag, t-min_lag]."""
        t = len(cache.keys)
        k, cache.key_state = self.key.step(x_t, cache.key_state)
        v_raw = self.value.project(x_t)
        cache.values.append(self.value.mix(cache.pending, v_raw))  # v_{t-1} now that x_t is known
        cache.pending = v_raw
        first, last = (0 if max_lag is None else max(0, t - max_lag)), t - min_lag
        q = self.queries(k, torch.tensor([t], device=x_t.device), min_lag, max_lag)
        if last >= first:
            y = F.scaled_dot_product_attention(q, cache.keys.view()[:, :, first:last + 1],
                                               cache.values.view()[:, :, first:last + 1], scale=1.0)
        else:
            y = torch.zeros_like(k)
        cache.keys.append(k)
        return y


class ContextMemoryV2(nn.Module):
    """Drop-in for layers/context_memory.py's ContextMemory when any v2 memory switch is on."""

    def __init__(self, config: MosaicConfig):
        super().__init__()
        names = (["short"] if config.short_window else []) + (["long"] if config.long_offset else []) or ["full"]
        self.memories = nn.ModuleDict({name: WindowedMemory(config) for name in names})
        self.c_proj = nn.Linear(len(names) * config.n_embd, config.n_embd, bias=False)  # W_o
        self.resid_dropout = nn.Dropout(config.dropout)
        self.h = config.short_window
        self.m, self.m_lo, self.m_hi = config.long_offset, config.long_offset_min, config.long_offset_max
        self.init, self.n_layer = config.init, config.n_layer
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for memory in self.memories.values():
            memory.reset_parameters()
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def long_offset(self) -> int:
        """m: drawn from U[m_lo, m_hi] in training (when a range is set), else the fixed inference offset."""
        if self.training and self.m_hi:
            return int(torch.randint(self.m_lo, self.m_hi + 1, ()).item())
        return self.m

    def lags(self) -> dict[str, tuple[int, int | None]]:
        """(min_lag, max_lag) for each memory, for this call."""
        table = {"full": (1, None), "short": (1, self.h - 1)}
        if "long" in self.memories:
            table["long"] = (self.long_offset(), None)
        return {name: table[name] for name in self.memories}

    @staticmethod
    def _no_padding(mask) -> None:
        if mask is not None:
            raise ValueError("padding masks are not supported by the v2 context memories (windows and offsets count "
                             "positions); run unpadded sequences")

    def _out(self, ys: list[torch.Tensor]) -> torch.Tensor:
        return self.c_proj(torch.cat([merge_heads(y) for y in ys], dim=-1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self._no_padding(mask)
        ys = [self.memories[name](x, *lag) for name, lag in self.lags().items()]
        return self.resid_dropout(self._out(ys))

    # The cache is a list (one ContextMemoryCache per memory, in `self.memories` order): beam search reorders lists.
    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        self._no_padding(mask)
        ys, caches = [], []
        for name, lag in self.lags().items():
            y, cache = self.memories[name].prefill(x, *lag)
            ys.append(y)
            caches.append(cache)
        return self._out(ys), caches

    def step(self, x_t: torch.Tensor, cache: list, mask: torch.Tensor | None = None) -> torch.Tensor:
        self._no_padding(mask)
        return self._out([self.memories[name].step(x_t, c, *lag)
                          for (name, lag), c in zip(self.lags().items(), cache)])
