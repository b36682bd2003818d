"""The initialisation schemes (config field `init`), in one place.

    library  the authors' Library: every Linear N(0, 1/fan_in), a residual output projection
             (c_proj) N(0, 1/(fan_in·n_layer)), the tied embedding N(0, 1/d), logits = LN(x)·Eᵀ/√d.
    gpt2     nanoGPT / nanoMosaics (§7, §9): every Linear and the embedding N(0, 0.02), c_proj N(0, 0.02/√(2·n_layer)),
             logits = LN(x)·Eᵀ (no scale).
    v2       (Memory Mosaic only) gpt2's draws and head, then v2's truncated normals redraw every Linear of the blocks
             and the embedding (layers/v2_init.py, called by the model); the draws before it keep the random stream.

Both give logits of small spread at initialisation (initial loss ≈ ln V). They differ in how fast the logits can
move: Adam changes each embedding entry by about lr per step, so with E ~ 1/√d and a 1/√d logit scale the logits
move √d times slower than with the GPT-2 head. The memories' own tensors (banks, ρ, θ, η, γ) start the same in both.
Each layer owns `reset_parameters()` (called by its __init__ and again by the model, which fixes the order).
"""

from __future__ import annotations

import math

import torch.nn as nn

GPT2_STD = 0.02


def init_linear(linear: nn.Linear, scheme: str, n_layer: int, residual: bool = False) -> None:
    """Draw a Linear's weight; residual=True for an output projection that adds into the residual stream."""
    if scheme in ("gpt2", "v2"):  # v2: redrawn later by v2_init_
        std = GPT2_STD / math.sqrt(2 * n_layer) if residual else GPT2_STD
    else:
        std = 1.0 / math.sqrt(linear.in_features * (n_layer if residual else 1))
    nn.init.normal_(linear.weight, std=std)


def embedding_std(scheme: str, n_embd: int) -> float:
    """Std of the (tied) token embedding, and of the transformer's position table."""
    return GPT2_STD if scheme in ("gpt2", "v2") else 1.0 / math.sqrt(n_embd)


def logit_scale(scheme: str, n_embd: int) -> float:
    """The factor on LN(x) before the tied decoder: 1/√d for the Library head, 1 for GPT-2 (and v2)."""
    return 1.0 if scheme in ("gpt2", "v2") else 1.0 / math.sqrt(n_embd)
