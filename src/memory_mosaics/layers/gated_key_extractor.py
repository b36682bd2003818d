"""Key extractor of Memory Mosaics v2 (Eq. 8): a gated leaky average whose decay depends on the data.

    k̃_t = W_φ x_t
    k̄_t = g_t k̃_t + λ_t k̄_{t-1},    g_t = exp(W_g x_t),  λ_t = exp(-|W_λ x_t|)    (ops/gated_leaky_average.py)
    k_t = Norm(k̄_t)                   (unit keys: the bandwidth is applied to the query, ops/adaptive_bandwidth.py)

Choices where the paper is silent (v2 paper, arXiv 2507.03285): g_t and λ_t are per-head scalars, so W_g and W_λ are
d×H (no bias); neither is clamped. `per_head=False` (ablation): one g_t and one λ_t per position shared by the heads
(W_g, W_λ: d×1). With `gated=False` the average is v1's per-head constant decay
λ_h = exp(-10|ρ_h|), g = 1 (layers/key_extractor.py). With `scaled=True` the keys carry v1's learned scale
s_h = exp(min(10θ_h, 5)) (used when adaptive bandwidth is off, so β_h = s_h² exactly as in v1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..ops.gated_leaky_average import gated_leaky_average, gated_leaky_average_reference, gated_leaky_average_step
from ..ops.leaky_average import leaky_average, leaky_average_reference, leaky_average_step
from .heads import scaled_l2_normalize, split_heads
from .key_extractor import SCALE_CAP
from .reparam import actual, stored


class GatedKeyExtractor(nn.Module):
    def __init__(self, n_embd: int, n_head: int, gated: bool = True, scaled: bool = False, impl: str = "fast",
                 chunk: int = 64, per_head: bool = True):
        super().__init__()
        self.n_head, self.gated, self.scaled, self.impl, self.chunk = n_head, gated, scaled, impl, chunk
        self.proj = nn.Linear(n_embd, n_embd, bias=False)  # W_φ
        if gated:
            self.gate = nn.Linear(n_embd, n_head if per_head else 1, bias=False)  # W_g
            self.decay = nn.Linear(n_embd, n_head if per_head else 1, bias=False)  # W_λ
        else:
            self.rho = nn.Parameter(stored(torch.linspace(0.5, 5.0, n_head)))
        if scaled:
            self.theta = nn.Parameter(torch.full((n_head,), 0.1))

    def scale(self) -> torch.Tensor:
        """s_h (H,), or ones when the keys are unit (the bandwidth lives in the query)."""
        if not self.scaled:
            return torch.ones(self.n_head, device=self.proj.weight.device)
        return torch.exp(torch.clamp(actual(self.theta), max=SCALE_CAP))

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d) -> g_t, log λ_t, each (B, H, T) (shared gates: broadcast over the heads)."""
        shape = (x.shape[0], self.n_head, x.shape[1])
        return (torch.exp(self.gate(x)).transpose(1, 2).expand(shape),
                -self.decay(x).abs().transpose(1, 2).expand(shape))

    def average(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) -> k̄ (B, H, T, d_h)."""
        k = split_heads(self.proj(x), self.n_head)
        if self.gated:
            g, ld = self.gates(x)
            if self.impl == "fast":
                return gated_leaky_average(k, g, ld, self.chunk)
            return gated_leaky_average_reference(k, g, ld)
        b = actual(self.rho.abs())
        return leaky_average(k, b, self.chunk) if self.impl == "fast" else leaky_average_reference(k, b)

    def finish(self, kbar: torch.Tensor) -> torch.Tensor:
        return scaled_l2_normalize(kbar, self.scale())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) -> keys (B, H, T, d_h)."""
        return self.finish(self.average(x))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kbar = self.average(x)
        return self.finish(kbar), kbar[:, :, -1]

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, 1, d), state k̄_{t-1} (B, H, d_h) or None -> (k_t (B, H, 1, d_h), k̄_t (B, H, d_h))."""
        k = split_heads(self.proj(x_t), self.n_head)[:, :, 0]  # (B, H, d_h)
        if self.gated:
            g, ld = self.gates(x_t)
            kbar = gated_leaky_average_step(state, k, g[:, :, 0], ld[:, :, 0])
        else:
            kbar = leaky_average_step(state, k, actual(self.rho.abs()))
        return self.finish(kbar[:, :, None]), kbar

