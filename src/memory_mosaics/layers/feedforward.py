"""Feed-forward layers: the transformer's GELU MLP, and the MLP / SwiGLU that may replace the persistent
memory in the ablation (`MosaicConfig(ffn="mlp" | "swiglu")`, hidden width matched to P-mem's parameters)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .init import init_linear


class MLP(nn.Module):
    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0, init: str = "gpt2", n_layer: int = 1):
        super().__init__()
        self.init, self.n_layer = init, n_layer  # layers/init.py
        self.c_fc = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_linear(self.c_fc, self.init, self.n_layer)
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class SwiGLU(nn.Module):
    """W₂(SiLU(W₁x) ⊙ W₃x) — the persistent memory of Memory Mosaics v2."""

    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0, init: str = "gpt2", n_layer: int = 1):
        super().__init__()
        self.init, self.n_layer = init, n_layer
        self.w1 = nn.Linear(n_embd, hidden, bias=False)
        self.w3 = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)  # W₂
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_linear(self.w1, self.init, self.n_layer)
        init_linear(self.w3, self.init, self.n_layer)
        init_linear(self.c_proj, self.init, self.n_layer, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.silu(self.w1(x)) * self.w3(x)))
