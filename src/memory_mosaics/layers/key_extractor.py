"""Key extractor: a learned leaky average of the past, normalised and scaled per head.

    k̃_t = W_φ x_t
    k̄_t = k̃_t + λ_h k̄_{t-1},      λ_h = exp(-b_h),  b_h = 10·|ρ_h|        (the leaky average; ops/leaky_average.py)
    k_t = s_h^p · Norm(k̄_t),        s_h = exp(min(10·θ_h, 5))

p = 1 for context-memory keys (queries are the same keys, so the score is s_h² k̂ᵀk̂: β_h = s_h²) and p = 2 for
persistent-memory queries (the bank keys carry no scale). ρ and θ are stored /10 so Adam moves them 10× faster (layers/reparam.py).
ρ starts at linspace(0.5, 5, H)/10, so b spans 0.5..5: each head gets its own time constant 1/b, from 2 tokens
down to 0.2 (equivalently λ from 0.61 down to 0.007).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import MosaicConfig
from ..ops.key_path import leaky_normalize
from ..ops.leaky_average import leaky_average, leaky_average_reference
from ..ops.normalize import scaled_l2_normalize as scaled_l2_normalize_fast
from .heads import per_head, scaled_l2_normalize, split_heads
from .init import init_linear
from .reparam import actual, stored

SCALE_CAP = 5.0  # s_h ≤ e^5 keeps β = s_h² below the fp16 maximum


class KeyExtractor(nn.Module):
    def __init__(self, config: MosaicConfig, scale_power: int = 1):
        super().__init__()
        d, H = config.n_embd, config.n_head
        self.n_head, self.scale_power = H, scale_power
        self.leaky, self.normalize = config.key_leaky_average, config.key_norm
        self.impl, self.chunk = config.impl, config.scan_chunk
        self.init, self.n_layer = config.init, config.n_layer
        self.proj = nn.Linear(d, d, bias=False)  # W_φ
        if self.leaky:
            self.rho = nn.Parameter(torch.empty(H))
        theta = torch.empty(H)
        if config.learn_bandwidth:
            self.theta = nn.Parameter(theta)
        else:
            self.register_buffer("theta", theta)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        init_linear(self.proj, self.init, self.n_layer)
        if self.leaky:
            self.rho.copy_(stored(torch.linspace(0.5, 5.0, self.n_head)))  # b ∈ [0.5, 5]
        self.theta.fill_(stored(1.0))  # s = e, β = e²

    # Per-head quantities, derived from the stored parameters (all (H,)).
    def decay_rate(self) -> torch.Tensor:
        """b_h; λ_h = exp(-b_h). Infinite (no memory of the past) when the leaky average is off."""
        if not self.leaky:
            return torch.full_like(self.theta, float("inf"))
        return actual(self.rho.abs())

    def scale(self) -> torch.Tensor:
        """The factor multiplying Norm(k̄): s_h (context memory) or s_h² (persistent memory)."""
        return torch.exp(self.scale_power * torch.clamp(actual(self.theta), max=SCALE_CAP))

    def bandwidth(self) -> torch.Tensor:
        """β_h = s_h² — the inverse kernel bandwidth of the retrieval this key takes part in."""
        return torch.exp(2.0 * torch.clamp(actual(self.theta), max=SCALE_CAP))

    # The three stages, exposed separately so cached decoding can run them one token at a time.
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> k̃ (B, H, T, d_h)."""
        return split_heads(self.proj(x), self.n_head)

    def finish(self, kbar: torch.Tensor) -> torch.Tensor:
        """k̄ (B, H, ..., d_h) -> k = s·Norm(k̄)."""
        if self.normalize:
            norm = scaled_l2_normalize_fast if self.impl == "fast" else scaled_l2_normalize
            return norm(kbar, self.scale())
        return per_head(self.scale().to(kbar.dtype), kbar) * kbar

    def average(self, k: torch.Tensor) -> torch.Tensor:
        """k̃ (B, H, T, d_h) -> k̄, the leaky average over time (identity when the ablation turns it off)."""
        if not self.leaky:
            return k
        b = self.decay_rate()
        return leaky_average(k, b, self.chunk) if self.impl == "fast" else leaky_average_reference(k, b)

    def from_projection(self, k: torch.Tensor) -> torch.Tensor:
        """k̃ (B, H, T, d_h) -> keys: finish(average(k̃)). The fast path on CPU runs both as one autograd Function
        (ops/key_path.py)."""
        if (self.impl == "fast" and self.leaky and self.normalize and k.device.type == "cpu" and not torch.compiler.is_compiling()
                and k.dtype in (torch.float32, torch.float64)):
            return leaky_normalize(k, self.decay_rate(), self.scale(), self.chunk)
        return self.finish(self.average(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) -> keys (B, H, T, d_h)."""
        return self.from_projection(self.project(x))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like forward, also returning the decoding state k̄ at the last position (B, H, 1, d_h)."""
        return self.prefill_projected(self.project(x))

    def prefill_projected(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`prefill` from k̃ = W_φ x (B, H, T, d_h): (keys, k̄ at the last position)."""
        kbar = self.average(k)
        return self.finish(kbar), kbar[:, :, -1:]

    def decode_constants(self, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(λ as (H, 1, 1), or None when the leaky average is off; the scale (H,)): the per-head values a decoding
        step needs, computed once per `generate` call instead of once per token."""
        lam = None
        if self.leaky:
            wide = torch.promote_types(dtype, torch.float32)
            lam = torch.exp(-self.decay_rate().to(wide)).to(dtype).view(-1, 1, 1)
        return lam, self.scale().to(dtype)

    def step_projected(self, k: torch.Tensor, state: torch.Tensor | None, lam: torch.Tensor | None,
                       scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoding step from k̃_t = W_φ x_t (B, H, 1, d_h), state k̄_{t-1} (or None) and `decode_constants`:
        the same arithmetic as leaky_average_step + finish. Returns (k_t, k̄_t)."""
        if lam is not None and state is not None:
            k = k + lam * state
        if self.normalize:
            return scaled_l2_normalize(k, scale), k
        return per_head(scale, k) * k, k
