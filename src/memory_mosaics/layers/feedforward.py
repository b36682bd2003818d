"""Feed-forward layers: the transformer's GELU MLP, and the MLP / SwiGLU that may replace the persistent
memory in the ablation (`MosaicConfig(ffn="mlp" | "swiglu")`, hidden width matched to P-mem's parameters)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class SwiGLU(nn.Module):
    """W₂(SiLU(W₁x) ⊙ W₃x) — the persistent memory of Memory Mosaics v2."""

    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(n_embd, hidden, bias=False)
        self.w3 = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)  # W₂
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.silu(self.w1(x)) * self.w3(x)))
