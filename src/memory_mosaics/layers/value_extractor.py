"""Value extractor: the one-step peek.

    ṽ_t = W_ψ x_t
    v_t = α_h · Norm((1 - γ_h) ṽ_{t+1} + γ_h ṽ_t),     α_h = exp(10·η_h),  ṽ_T := 0

The value stored at t describes what came *next*; the strict-past read rule (ops/strict_past.py) keeps it
from leaking. γ_h starts U(0,1) and is unconstrained; η_h starts at -0.05 (α = e^-0.5).
With `value_peek=False` (ablation) v_t = α_h · Norm(ṽ_t).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import MosaicConfig
from ..ops.normalize import scaled_l2_normalize as scaled_l2_normalize_fast
from .heads import per_head, scaled_l2_normalize, split_heads
from .init import init_linear
from .reparam import actual, stored


class ValueExtractor(nn.Module):
    def __init__(self, config: MosaicConfig):
        super().__init__()
        d, H = config.n_embd, config.n_head
        self.n_head, self.peek = H, config.value_peek
        self.init, self.n_layer = config.init, config.n_layer
        self.proj = nn.Linear(d, d, bias=False)  # W_ψ
        if self.peek:
            self.gamma = nn.Parameter(torch.empty(H))
        self.eta = nn.Parameter(torch.empty(H))
        self.impl = config.impl
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.peek:
            self.gamma.uniform_(0.0, 1.0)
        init_linear(self.proj, self.init, self.n_layer)
        self.eta.fill_(stored(-0.5))  # α = e^-0.5

    def scale(self) -> torch.Tensor:
        """α_h (H,)."""
        return torch.exp(actual(self.eta))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> ṽ (B, H, T, d_h)."""
        return split_heads(self.proj(x), self.n_head)

    def mix(self, v_now: torch.Tensor, v_next: torch.Tensor | None) -> torch.Tensor:
        """v = α·Norm((1-γ) ṽ_next + γ ṽ_now). v_next=None means the next input is unknown (or peek is off)."""
        gamma = per_head(self.gamma.to(v_now.dtype), v_now) if self.peek else None
        return self.mix_with(v_now, v_next, gamma, self.scale())

    @staticmethod
    def mix_with(v_now: torch.Tensor, v_next: torch.Tensor | None, gamma: torch.Tensor | None,
                 scale: torch.Tensor) -> torch.Tensor:
        """`mix` with γ (viewed to broadcast over v_now; None when peek is off) and α (H,) given: decoding
        computes them once per `generate` call."""
        v = v_now
        if gamma is not None:
            v = gamma * v_now if v_next is None else v_next + gamma * (v_now - v_next)
        return scaled_l2_normalize(v, scale)

    def from_projection(self, v: torch.Tensor) -> torch.Tensor:
        """ṽ (B, H, T, d_h) -> values (B, H, T, d_h). The last value peeks at ṽ_T = 0.
        The fast path mixes and normalises in one autograd Function (ops/normalize.py)."""
        if self.impl == "fast":
            return scaled_l2_normalize_fast(v, self.scale(), self.gamma if self.peek else None)
        v_next = F.pad(v[:, :, 1:], (0, 0, 0, 1)) if self.peek else None
        return self.mix(v, v_next)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) -> values (B, H, T, d_h)."""
        return self.from_projection(self.project(x))
