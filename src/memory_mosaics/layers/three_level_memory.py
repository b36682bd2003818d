"""The context memories of Memory Mosaics v2 (v2 paper, arXiv 2507.03285): short-term and long-term, concatenated, W_o.

    short-term:  y^s_t = Σ_{j ∈ [t-h+1, t-1]} softmax_j(q_tᵀ k_j) v_j        (h = short_window)
    long-term:   y^l_t = Σ_{j ≤ t-m}          softmax_j(q_tᵀ k_j) v_j        (m = long-term offset)
    output:      c_proj( concat(y^s, y^l) )                                  (W_o: 2d -> d)

The third level, the persistent memory, is the block's SwiGLU (`ffn="swiglu"`, models/mosaic.py).

Choices where the paper is silent (documented in docs/long_context.md):
- each memory has its own key extractor, value extractor and bandwidth over the full width d with n_head heads
  (v2's parameter counts drop by ~1.6 B of 9.9 B without long-term memory: the memory owns real weights);
- the off-by-one in h follows Eq. 10 (ops/windowed_retrieval.py); `window_convention="appc"` reads h pairs instead;
- m ~ U[long_offset_min, long_offset_max] (integers, inclusive) is drawn afresh by every layer at every training
  forward pass (one m for the whole batch; `long_offset_draw="forward"`: one m per forward pass, shared by every
  layer, drawn by the model); in eval mode, prefill and decoding m = long_offset;
- g, λ and β₀, β₁, α are per head (`v2_per_head=False`: one of each per memory, shared by its heads).
`mask` (B, T), optional, False at (left) padding: the inputs there are zeroed before the key extractor, pad keys are
never read and n counts the real pairs read, so a padded row computes what it computes alone (ops/padding.py).
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
from ..ops.padding import masked_attention, zero_padding
from ..ops.windowed_retrieval import pairs_read, pairs_read_masked, windowed_retrieval, windowed_retrieval_reference
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
        P = H if config.v2_per_head else 1  # bandwidth coefficients per head, or shared (broadcast over heads)
        self.adaptive = config.adaptive_bandwidth
        self.key = GatedKeyExtractor(config.n_embd, H, gated=config.key_gate, scaled=not self.adaptive,
                                     impl=config.impl, chunk=config.scan_chunk, per_head=config.v2_per_head)
        self.value = ValueExtractor(config)
        if self.adaptive:
            self.theta_beta0 = nn.Parameter(torch.empty(P))
            self.theta_beta1 = nn.Parameter(torch.empty(P))
            self.theta_alpha = nn.Parameter(torch.empty(P))
        self.attn_dropout = config.cmem_attn_dropout
        self.impl = config.impl
        self.init, self.n_layer = config.init, config.n_layer
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The key extractor's Linears (W_φ, W_g, W_λ) by the config's init scheme, the value extractor, and the
        per-head scalars this layer adds (v2 Table 6). `init="v2"` redraws the Linears afterwards (layers/v2_init.py)."""
        for linear in self.key.modules():
            if isinstance(linear, nn.Linear):
                init_linear(linear, self.init, self.n_layer)
        self.value.reset_parameters()
        if self.adaptive:
            self.theta_beta0.fill_(INIT_THETA_BETA)
            self.theta_beta1.fill_(INIT_THETA_BETA)
            self.theta_alpha.fill_(INIT_THETA_ALPHA)
        if not self.key.gated:  # v1's constant decays (gated keys have W_g, W_λ instead)
            self.key.rho.copy_(stored(torch.linspace(0.5, 5.0, self.key.n_head)))
        if self.key.scaled:  # v1's bandwidth s = e, gated or not (no random draw: the stream is unchanged)
            self.key.theta.fill_(stored(1.0))

    def queries(self, k: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """k (B, H, T, d_h) and the pairs each query reads, n (T,) or (B, T) -> q: β(n)·k (adaptive bandwidth) or k
        itself (β = s_h²)."""
        if not self.adaptive:
            return k
        coeffs = bandwidth_coefficients(self.theta_beta0, self.theta_beta1, self.theta_alpha)
        beta = adaptive_bandwidth(n, *coeffs)  # (H or 1, T) or (B, H or 1, T)
        return beta.to(k.dtype)[..., None] * k

    @staticmethod
    def pairs(x: torch.Tensor, min_lag: int, max_lag: int | None, mask: torch.Tensor | None) -> torch.Tensor:
        """n for every query of x (B, T, d): (T,), or (B, T) counting only real pairs under a padding mask."""
        if mask is None:
            return pairs_read(torch.arange(x.shape[1], device=x.device), min_lag, max_lag)
        return pairs_read_masked(mask, min_lag, max_lag)

    def forward(self, x: torch.Tensor, min_lag: int, max_lag: int | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, d), zero at padding -> (B, H, T, d_h)."""
        k, v = self.key(x), self.value(x)
        q = self.queries(k, self.pairs(x, min_lag, max_lag, mask))
        retrieve = windowed_retrieval if self.impl == "fast" else windowed_retrieval_reference
        return retrieve(q, k, v, min_lag, max_lag, self.attn_dropout, self.training, key_mask=mask)

    def prefill(self, x: torch.Tensor, min_lag: int, max_lag: int | None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ContextMemoryCache]:
        k, key_state = self.key.prefill(x)
        v_raw = self.value.project(x)
        v = self.value.from_projection(v_raw)
        q = self.queries(k, self.pairs(x, min_lag, max_lag, mask))
        y = windowed_retrieval(q, k, v, min_lag, max_lag, key_mask=mask)
        return y, ContextMemoryCache(key_state, GrowingBuffer(k), GrowingBuffer(v[:, :, :-1]), v_raw[:, :, -1:])

    def step(self, x_t: torch.Tensor, cache: ContextMemoryCache, min_lag: int, max_lag: int | None,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, 1, d) at position t = number of stored keys -> (B, H, 1, d_h); reads j ∈ [t-max_lag, t-min_lag].
        mask (B, t+1), optional: which positions 0..t are real (stored pads are never read nor counted in n)."""
        t = len(cache.keys)
        k, cache.key_state = self.key.step(x_t, cache.key_state)
        v_raw = self.value.project(x_t)
        cache.values.append(self.value.mix(cache.pending, v_raw))  # v_{t-1} now that x_t is known
        cache.pending = v_raw
        first, last = (0 if max_lag is None else max(0, t - max_lag)), t - min_lag
        if mask is None:
            q = self.queries(k, torch.tensor([max(0, last - first + 1)], device=x_t.device))
        else:
            real = mask.bool()[:, first:last + 1] if last >= first else mask.new_zeros(mask.shape[0], 0, dtype=torch.bool)
            q = self.queries(k, real.sum(-1, keepdim=True))  # n per row: (B, 1)
        if last < first:
            y = torch.zeros_like(k)
        elif mask is None:
            y = F.scaled_dot_product_attention(q, cache.keys.view()[:, :, first:last + 1],
                                               cache.values.view()[:, :, first:last + 1], scale=1.0)
        else:
            y = masked_attention(q, cache.keys.view()[:, :, first:last + 1], cache.values.view()[:, :, first:last + 1],
                                 real[:, None, None, :], scale=1.0)
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
        # The window's largest lag: Eq. 10 reads j ∈ [t-h+1, t-1] (h-1 pairs), App. C reads [t-h, t-1] (h pairs).
        self.max_short = config.short_window - (1 if config.window_convention == "eq10" else 0)
        self.m, self.m_lo, self.m_hi = config.long_offset, config.long_offset_min, config.long_offset_max
        # One training forward pass's m, set by the model when long_offset_draw="forward" (models/mosaic.py), else
        # None: this layer draws its own.
        self.shared_m: int | None = None
        self.init, self.n_layer = config.init, config.n_layer
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for memory in self.memories.values():
            memory.reset_parameters()
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def long_offset(self) -> int:
        """m: drawn from U[m_lo, m_hi] in training (when a range is set), else the fixed inference offset."""
        if self.training and self.m_hi:
            if self.shared_m is not None:
                return self.shared_m
            return int(torch.randint(self.m_lo, self.m_hi + 1, ()).item())
        return self.m

    def lags(self) -> dict[str, tuple[int, int | None]]:
        """(min_lag, max_lag) for each memory, for this call."""
        table = {"full": (1, None), "short": (1, self.max_short)}
        if "long" in self.memories:
            table["long"] = (self.long_offset(), None)
        return {name: table[name] for name in self.memories}

    def _out(self, ys: list[torch.Tensor]) -> torch.Tensor:
        return self.c_proj(torch.cat([merge_heads(y) for y in ys], dim=-1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = zero_padding(x, mask)
        ys = [self.memories[name](x, *lag, mask) for name, lag in self.lags().items()]
        return self.resid_dropout(self._out(ys))

    # The cache is a list (one ContextMemoryCache per memory, in `self.memories` order): beam search reorders lists.
    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        x = zero_padding(x, mask)
        ys, caches = [], []
        for name, lag in self.lags().items():
            y, cache = self.memories[name].prefill(x, *lag, mask)
            ys.append(y)
            caches.append(cache)
        return self._out(ys), caches

    def step(self, x_t: torch.Tensor, cache: list, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._out([self.memories[name].step(x_t, c, *lag, mask)
                          for (name, lag), c in zip(self.lags().items(), cache)])
