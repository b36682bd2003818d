"""Optimiser and learning-rate schedules shared by every training loop (language modelling, ICL, moons)."""

from __future__ import annotations

import math

import torch


def build_adamw(model, lr: float, weight_decay: float = 0.1, betas=(0.9, 0.95), eps: float = 1e-8):
    """AdamW with the reference weight-decay groups (decay tensors with ≥ 2 dims only).
    Uses the fused CUDA kernel when every parameter lives on a CUDA device."""
    groups = model.param_groups(weight_decay) if hasattr(model, "param_groups") else [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def warmup_cosine(step: int, *, lr: float, warmup: int, total: int, min_lr: float = 0.0,
                  warmup_start: float = 0.0, cosine_from_zero: bool = False) -> float:
    """Linear warm-up from `warmup_start` to `lr` over `warmup` steps, then cosine decay to `min_lr` at `total`.

    cosine_from_zero=True measures the cosine phase from step 0 rather than from the end of warm-up
    (timm's CosineLRScheduler with warmup_prefix=False, as in the RegBench protocol)."""
    if warmup > 0 and step < warmup:
        return warmup_start + (lr - warmup_start) * step / warmup
    if step >= total:
        return min_lr
    start = 0 if cosine_from_zero else warmup
    progress = (step - start) / max(1, total - start)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
