"""Training as in the reference: AdamW without bias correction, LR 1e-2 → 5e-6 linearly, clipped squared error."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..training.loop import fit
from .data import BLOCK, train_batch
from .model import MoonsMemory
from .optim import MLXAdamW, linear_decay

LR, END_LR = 1e-2, 5e-6


def clipped_loss(pred: torch.Tensor, target: torch.Tensor, clip: float = 0.5) -> torch.Tensor:
    """mean(clip(ŷ − y, −0.5, 0.5)²) over all positions and features (outliers give no gradient)."""
    return (pred - target).clamp(-clip, clip).square().mean()


def train(n_head: int, seed: int = 100, iters: int = 500, batch: int = 64, block: int = BLOCK,
          log=print, log_every: int = 50, reference: bool = False, device="cpu", progress: bool = False):
    """Train one model (on `device`; returned on the CPU, in eval mode). The seed fixes both the init (torch) and
    the data stream (numpy). Returns (model, per-iteration losses, seconds)."""
    if iters < 1 or batch < 1 or block < 2:
        raise ValueError(f"need iters >= 1, batch >= 1, block >= 2; got {iters}, {batch}, {block}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MoonsMemory(n_head).to(device)
    opt = MLXAdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=2e-8, weight_decay=0.0)
    t0 = time.perf_counter()

    def after_step(step, record):
        it = step - 1
        if log and (it % log_every == 0 or it == iters - 1):
            log(f"heads {n_head} seed {seed} iter {it:4d} loss {record['loss']:.5f} ({time.perf_counter() - t0:.0f} s)")

    history = fit(model, opt, steps=iters, lr_at=lambda it: linear_decay(it, LR, END_LR, iters),
                  batch=lambda it: tuple(t.to(device) for t in train_batch(rng, batch, block)),
                  loss=lambda m, x, y: clipped_loss(m(x, reference=reference), y), after_step=after_step,
                  progress=progress)
    model.eval()
    return model.cpu(), [h["loss"] for h in history], time.perf_counter() - t0
