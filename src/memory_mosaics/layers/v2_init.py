"""Memory Mosaics v2 initialisation (v2 paper, arXiv 2507.03285), applied after the gpt2 draws when `init="v2"`.

Truncated normal at ±3σ, l = block index from 0, d = width, d' = SwiGLU hidden width:
- σ = 1/√(2d(l+1)) for every Linear of block l (W_φ, W_ψ, W_g, W_λ, W_o, W₁, W₃; also an MLP's or P-mem's);
- σ = 1/√(2d'(l+1)) for the SwiGLU's W₂;
- σ = 1/√(2d) for the embedding, which is also the (tied) classifier.
Value scales: v2 writes α_ψ = e^{min(|θ|,15)} with θ = 0, i.e. α = 1; our α = exp(10η), so η = 0 at init.
Per-head scalars of the keys and bandwidths keep their own inits (layers/three_level_memory.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .feedforward import SwiGLU
from .value_extractor import ValueExtractor


def _trunc_normal_(w: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(w, std=std, a=-3 * std, b=3 * std)


@torch.no_grad()
def v2_init_(model) -> None:
    d = model.config.n_embd
    for layer, block in enumerate(model.blocks):
        for module in block.modules():
            if isinstance(module, nn.Linear):
                _trunc_normal_(module.weight, 1.0 / math.sqrt(2 * d * (layer + 1)))
            elif isinstance(module, ValueExtractor):
                module.eta.zero_()
        for module in block.modules():  # after the pass above: W₂ reads the hidden width d'
            if isinstance(module, SwiGLU):
                _trunc_normal_(module.c_proj.weight, 1.0 / math.sqrt(2 * module.c_proj.in_features * (layer + 1)))
    _trunc_normal_(model.wte.weight, 1.0 / math.sqrt(2 * d))
