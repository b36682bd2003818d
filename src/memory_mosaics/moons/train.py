"""Training as in the reference: AdamW without bias correction, LR 1e-2 → 5e-6 linearly, clipped squared error.

The moons task for training/loop.py's Loop (device, mixed precision, progress bar, checkpoints in the one safe
format, exact resume); the MLX-style optimiser (optim.py) is the task's choice of optimiser. Under torchrun (DDP)
every process draws the same global batch from the same seeded stream and trains on its equal slice."""

from __future__ import annotations

import numpy as np
import torch

from ..training import distributed as D
from ..training.checkpoint import json_payloads
from ..training.loop import Loop, Stopwatch, Task
from .data import BLOCK, train_batch
from .model import MoonsMemory
from .optim import MLXAdamW, linear_decay

LR, END_LR = 1e-2, 5e-6


def clipped_loss(pred: torch.Tensor, target: torch.Tensor, clip: float = 0.5) -> torch.Tensor:
    """mean(clip(ŷ − y, −0.5, 0.5)²) over all positions and features (outliers give no gradient)."""
    return (pred - target).clamp(-clip, clip).square().mean()


class MoonsTask(Task):
    """Random windows of the training triples from a numpy stream; the losses are kept (and saved) per step."""

    def __init__(self, n_head: int, seed: int, iters: int, batch: int, block: int, log, log_every: int,
                 reference: bool, device, files: dict | None, info: D.DistInfo | None = None):
        torch.manual_seed(seed)  # the seed fixes both the init (torch) and the data stream (numpy), on every process
        self.info = info or D.DistInfo()
        self.rng = np.random.default_rng(seed)
        self.model = MoonsMemory(n_head).to(device)
        self.n_head, self.seed, self.iters, self.batch, self.block = n_head, seed, iters, batch, block
        self.log, self.log_every, self.reference, self.device = log, log_every, reference, device
        self._files = json_payloads(files)
        self.losses: list[float] = []
        self.clock = Stopwatch()  # training time over the whole run, resumes included

    def make_optimizer(self, model):
        return MLXAdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=2e-8, weight_decay=0.0)

    def lr_at(self, step: int) -> float:
        return linear_decay(step, LR, END_LR, self.iters)

    def loss(self, model, micro: int) -> torch.Tensor:
        xy = D.local_part(train_batch(self.rng, self.batch, self.block), self.info)  # this process's slice
        x, y = (t.to(self.device) for t in xy)
        return clipped_loss(model(x, reference=self.reference), y)

    def after_step(self, step, loss, lr, seconds):
        self.losses.append(loss)
        it = step - 1
        if self.log and self.info.main and (it % self.log_every == 0 or it == self.iters - 1):
            self.log(f"heads {self.n_head} seed {self.seed} iter {it:4d} loss {loss:.5f} "
                     f"({self.clock.elapsed():.0f} s)")

    def state(self) -> dict:
        return {"data_rng": self.rng.bit_generator.state, "losses": self.losses, **self.clock.state()}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["data_rng"]
        self.losses = state["losses"]
        self.clock.load_state(state)

    def files(self) -> dict[str, bytes]:
        return self._files


def train(n_head: int, seed: int = 100, iters: int = 500, batch: int = 64, block: int = BLOCK,
          log=print, log_every: int = 50, reference: bool = False, device="cpu", progress: bool = False,
          out=None, resume=None, amp=None, files: dict | None = None, checkpoint_every: int | None = None,
          info: D.DistInfo | None = None):
    """Train one model (on `device`; returned on the CPU, in eval mode). Returns (model, per-iteration losses,
    seconds). out: write checkpoints there (with `files`, JSON-able dicts); resume: (checkpoint, state) to continue
    from (training/loop.resume_run); amp: the autocast dtype (CUDA) or None; info: this process under torchrun."""
    if iters < 1 or batch < 1 or block < 2:
        raise ValueError(f"need iters >= 1, batch >= 1, block >= 2; got {iters}, {batch}, {block}")
    task = MoonsTask(n_head, seed, iters, batch, block, log, log_every, reference, device, files, info)
    D.check_divisible(batch, "--batch", task.info.world)
    Loop(task, steps=iters, out=out, checkpoint_every=checkpoint_every, keep=2, progress=progress, info=task.info,
         device=device, amp=amp, resume=resume, command="mosaic moons").run()
    model = task.model.eval()
    return model.cpu(), task.losses, task.clock.elapsed()
