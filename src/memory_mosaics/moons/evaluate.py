"""Generation error vs context length (the paper's plot, with the reference's evaluation bugs fixed).

For a context length c: feed the true steps x_0..x_{c-1}, generate n steps autoregressively (feeding predictions
back), and average |generated − true x_c..x_{c+n-1}| over steps, features and windows. Reported for n = 5
(separates the models) and n = 25 (the paper's plot).

Fast path: one full forward of each window gives the cache after any prefix (strict causality), so each context
costs only its n−1 decode steps.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import BLOCK, triple_windows

THRESHOLD = 0.1


def context_grid(block: int = BLOCK, n_long: int = 25, stride: int = 5) -> list[int]:
    """Contexts 1, 1+stride, ... up to block − n_long − 1 (774 for 800 steps), as the reference's range."""
    if stride < 1:
        raise ValueError(f"context stride must be >= 1, got {stride}")
    if block - n_long <= 1:
        raise ValueError(f"block {block} too short for {n_long} generated steps")
    return list(range(1, block - n_long, stride))


@torch.no_grad()
def generation_errors(model, x: torch.Tensor, contexts, steps=(5, 25)) -> dict[int, list[float]]:
    """x: (N, L, 6) true windows with L ≥ max(contexts) + max(steps). Returns {n: [error per context]}."""
    n_max = max(steps)
    if max(contexts) + n_max > x.shape[1]:
        raise ValueError(f"windows of {x.shape[1]} steps are too short for context {max(contexts)} + {n_max}")
    y_full, cache = model.prefill(x)  # y_full[:, t] predicts x_{t+1}
    errs = {n: [] for n in steps}
    for c in contexts:
        gen = model.generate_from(y_full[:, c - 1:c], cache.truncate(c), n_max)  # (N, n_max, 6)
        diff = (gen - x[:, c:c + n_max]).abs()
        for n in steps:
            errs[n].append(diff[:, :n].mean().item())
    return errs


def stays_below(contexts, errors, threshold: float = THRESHOLD):
    """Smallest context after which the error stays below `threshold` (None if it ends above)."""
    best = None
    for c, e in zip(reversed(contexts), reversed(errors)):
        if not e < threshold:
            break
        best = c
    return best


def evaluate_triple(model, triple, seed: int, windows: int = 512, block: int = BLOCK, stride: int = 5,
                    steps=(5, 25)) -> dict:
    """Errors vs context for one triple on `windows` random windows (seeded), plus the 5-step threshold."""
    rng = np.random.default_rng(seed)
    x, _ = triple_windows(triple, windows, rng, block)
    contexts = context_grid(block, max(steps), stride)
    errs = generation_errors(model, x, contexts, steps)
    return {
        "triple": list(triple),
        "contexts": contexts,
        **{f"error_{n}": errs[n] for n in steps},
        "context_threshold": stays_below(contexts, errs[min(steps)]),
    }
