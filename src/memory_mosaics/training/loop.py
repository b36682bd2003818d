"""The one training loop. Every experiment trains through it — language models (trainer.py, which adds
DDP / FSDP, mixed precision, checkpoints and resume around it), the ICL benchmarks and three moons — and brings
only its task-specific pieces: how to draw a batch, the loss, and what to do after a step (evaluate, log).

    history = fit(model, optimizer, steps=100, lr_at=lambda s: 1e-3, batch=lambda s: (x, y),
                  loss=lambda model, x, y: F.mse_loss(model(x), y), grad_clip=1.0, progress=True)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from ..optim import set_lr


def optimizer_step(model, optimizer, micro_loss: Callable[[int], torch.Tensor], *, accum: int = 1,
                   grad_clip: float = 0.0, scaler=None, no_sync: Callable[[int], object] | None = None
                   ) -> list[torch.Tensor]:
    """One optimizer step over `accum` micro-batches: micro_loss(i) -> the loss of micro-batch i; gradients of
    loss / accum accumulate (inside no_sync(i) when given: DDP skips the all-reduce there); then clip the global
    norm (if grad_clip > 0) and step (through the GradScaler when given). Returns the detached micro losses."""
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for micro in range(accum):
        with no_sync(micro) if no_sync is not None else nullcontext():
            loss = micro_loss(micro)
            scaled = loss / accum
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        losses.append(loss.detach())
    if grad_clip and grad_clip > 0:
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return losses


def progress_bar(total: int, enabled: bool, initial: int = 0):
    """tqdm with an ETA (to stderr), or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def fit(model, optimizer, *, steps: int, lr_at: Callable[[int], float], batch: Callable[[int], tuple],
        loss: Callable, grad_clip: float = 0.0, after_step: Callable[[int, dict], None] | None = None,
        progress: bool = False) -> list[dict]:
    """Train for `steps` optimizer steps: at step s (0-based) set the learning rate lr_at(s), draw batch(s) ->
    (x, y), minimise loss(model, x, y); after_step(s + 1, record) may evaluate or log, and returns True to stop
    early. Returns the per-step records {step, loss, lr}."""
    history = []
    bar = progress_bar(steps, progress)
    model.train()
    for step in range(steps):
        lr = lr_at(step)
        set_lr(optimizer, lr)
        xy = tuple(batch(step))
        (value,) = optimizer_step(model, optimizer, lambda _, xy=xy: loss(model, *xy), grad_clip=grad_clip)
        history.append(dict(step=step + 1, loss=value.item(), lr=lr))
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", refresh=False)
        bar.update(1)
        if after_step is not None and after_step(step + 1, history[-1]):
            break  # the task asked to stop early (e.g. a time limit)
    bar.close()
    return history
