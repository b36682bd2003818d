"""Loss at each position of the context — the paper's per-position figure — and overall loss / perplexity.

    res = per_position_loss(model, val_tokens, context=512, n_batches=10)
    res.per_position    # (512,) mean next-token loss at positions 0..511 (nats)
    res.loss, res.perplexity, res.tokens

The windows are drawn from a generator seeded with `seed`, so two models (or two checkpoints) are scored on
exactly the same text. A Memory Mosaic accepts any context, as does a rotary / no-position transformer; a
learned-position transformer raises ValueError past block_size.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.dataset import check_length, windows_at


@dataclass
class PositionLoss:
    context: int
    per_position: np.ndarray  # (context,) mean loss at each position, nats
    loss: float  # mean over all positions
    tokens: int  # predictions scored

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def to_dict(self) -> dict:
        return {"context": self.context, "loss": self.loss, "perplexity": self.perplexity, "tokens": self.tokens}


def fixed_starts(n_tokens: int, context: int, count: int, seed: int) -> list[int]:
    """`count` window starts drawn with a private generator: the same for every model scored on this data."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n_tokens - context, (count,), generator=g).tolist()


@torch.no_grad()
def per_position_loss(model, data: np.ndarray, context: int, n_batches: int = 10, batch_size: int = 8,
                      seed: int = 0, device: str | torch.device | None = None,
                      autocast_dtype: torch.dtype | None = None) -> PositionLoss:
    """Mean next-token cross-entropy at each position over n_batches × batch_size windows of `data`."""
    if hasattr(model, "check_length"):
        model.check_length(context)  # the transformer's clear error, before any work
    check_length(data, context, "evaluation")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    starts = fixed_starts(len(data), context, n_batches * batch_size, seed)
    total = torch.zeros(context, dtype=torch.float64)
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    try:
        for b in range(n_batches):
            x, y = windows_at(data, starts[b * batch_size:(b + 1) * batch_size], context)
            x, y = x.to(device), y.to(device)
            with amp:
                logits = model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (B, T)
            total += loss.sum(0).double().cpu()
    finally:
        model.train(was_training)
    n = n_batches * batch_size
    per_pos = (total / n).numpy()
    return PositionLoss(context=context, per_position=per_pos, loss=float(per_pos.mean()), tokens=n * context)


def write_per_position(results: dict[int, PositionLoss], out: Path, title: str) -> tuple[Path, Path]:
    """per_position.csv (position, then the loss at each evaluated context) and per_position.png."""
    import csv

    from .plots import loss_curves, save

    out.mkdir(parents=True, exist_ok=True)
    contexts = sorted(results)
    csv_path = out / "per_position.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["position"] + [f"loss_ctx{c}" for c in contexts])
        for pos in range(contexts[-1]):
            w.writerow([pos] + [f"{results[c].per_position[pos]:.6f}" if pos < c else "" for c in contexts])
    png_path = out / "per_position.png"
    fig = loss_curves({f"context {c}": results[c].per_position for c in reversed(contexts)}, title=title, binned=True)
    save(fig, png_path, dpi=120)
    return csv_path, png_path
