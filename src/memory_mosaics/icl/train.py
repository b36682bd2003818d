"""Training loops for the ICL benchmarks.

RegBench: batch 32 of shuffled training sequences, 200 epochs (⌈N/32⌉·200 steps),
AdamW betas (0.9, 0.999), weight decay 0.1, linear warm-up from 1e-6 over 10% of the steps then cosine (measured
from step 0) to 0.1·lr, mean CE over unmasked labels; gradient clipping 1.0 for the Memory Mosaic only (the
authors' mm.yaml) and none for the transformer (base.yaml). The best state by validation loss (on a fixed
validation subset, every `eval_every` steps) is restored and scored on the test automata.

Induction head / MQAR: a fresh batch every step (an infinite stream), same optimiser and schedule, scored on a
fixed test batch.

Both train through training/loop.py's Loop (device, mixed precision, clipping, progress bar, checkpoints in the
one safe format and exact resume when given a run folder); the task objects below are the ICL-specific pieces.
Under torchrun (DDP) every process draws the same global batch from the same seeded stream and trains on its
slice, so N processes train like one (up to the all-reduce's round-off); evaluation runs identically everywhere.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..optim import build_adamw, warmup_cosine
from ..training import distributed as D
from ..training.checkpoint import json_payloads
from ..training.loop import Loop, Stopwatch, Task
from .metrics import RegBenchScore
from .regbench import RegBench, collate

BATCH_SIZE = 32  # sequences per optimizer step (the global batch under torchrun)


@dataclass
class Budget:
    """How long to train. `full` is the paper protocol; `demo` a stated CPU reduction (same for both models)."""

    name: str
    steps: int
    lr: float
    warmup: int
    eval_every: int  # validate every this many steps (and at the last step)
    val_subset: int  # validation sequences used for checkpoint selection
    dropout: bool  # False: every dropout off, for both models (CPU speed; see models.py)
    batch_size: int = BATCH_SIZE
    weight_decay: float = 0.1

    def describe(self) -> str:
        checks = (f"validation on {self.val_subset} automata" if self.val_subset else "test batch") + \
            f" every {self.eval_every} steps"
        return (f"budget '{self.name}': {self.steps} steps of batch {self.batch_size}, lr {self.lr:g} "
                f"(warm-up {self.warmup} steps from 1e-6, cosine to {0.1 * self.lr:g}), weight decay "
                f"{self.weight_decay:g}, {checks}, dropout {'as in the presets' if self.dropout else 'off (all models)'}")


def regbench_budget(name: str, n_train: int, steps: int | None = None, lr: float | None = None,
                    dropout: bool | None = None, epochs: int = 200, batch_size: int = BATCH_SIZE) -> Budget:
    if name == "full":
        per_epoch = math.ceil(n_train / batch_size)
        b = Budget("full", steps=per_epoch * epochs, lr=5e-4, warmup=0, eval_every=per_epoch * 5,
                   val_subset=100, dropout=True, batch_size=batch_size)
    elif name == "demo":
        # Measured (docs/icl.md): at lr 2e-3 the accuracy gap appears within 80 steps; 5e-4 needs the full budget.
        b = Budget("demo", steps=80, lr=2e-3, warmup=0, eval_every=20, val_subset=64, dropout=False,
                   batch_size=batch_size)
    else:
        raise ValueError(f"unknown budget {name!r}; choose demo or full")
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        b.steps = steps
        b.eval_every = min(b.eval_every, max(1, steps // 4))
    if lr is not None:
        if not 0 < lr < float("inf"):  # also refuses nan
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        b.lr = lr
    if dropout is not None:
        b.dropout = dropout
    b.warmup = max(1, round(0.1 * b.steps))
    return b


def lr_at(step: int, b: Budget) -> float:
    """timm CosineLRScheduler(t_initial=steps, warmup_t=10%, warmup_lr_init=1e-6, lr_min=0.1·lr, prefix=False)."""
    return warmup_cosine(step, lr=b.lr, warmup=b.warmup, total=b.steps, min_lr=0.1 * b.lr, warmup_start=1e-6,
                         cosine_from_zero=True)


def masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over labels ≠ -100. logits (B, T, V), labels (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def _batches_by_length(examples, batch_size):
    """Evaluation batches of similar lengths (less padding); order does not change pooled metrics."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].inputs))
    for i in range(0, len(order), batch_size):
        yield [examples[j] for j in order[i : i + batch_size]]


def _on(device, arrays):  # device None: stays on the CPU
    return (torch.from_numpy(a).to(device or "cpu") for a in arrays)


@torch.no_grad()
def regbench_loss(model, examples, batch_size=32, device="cpu") -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in _batches_by_length(examples, batch_size):
        x, y = _on(device, collate(batch))
        n = int((y != -100).sum())
        total += float(masked_ce(model(x), y)) * n
        count += n
    model.train()
    return total / max(1, count)


@torch.no_grad()
def regbench_evaluate(model, examples, batch_size=32, device="cpu") -> dict:
    """Pooled accuracy / TVD (metrics.py) and CE over the given automata."""
    model.eval()
    score = RegBenchScore()
    total, count = 0.0, 0
    for batch in _batches_by_length(examples, batch_size):
        x, y = _on(device, collate(batch))
        logits = model(x).float()  # (B, T, V)
        n = int((y != -100).sum())
        total += float(masked_ce(logits, y)) * n
        count += n
        probs = torch.softmax(logits, dim=-1).cpu()
        for i, ex in enumerate(batch):
            L = len(ex.inputs)
            score.update(probs[i, :L], torch.from_numpy(ex.allowed), torch.from_numpy(ex.labels < 0))
    model.train()
    return {**score.result(), "loss": total / max(1, count)}


class _IclTask(Task):
    """The pieces both ICL protocols share: AdamW (betas 0.9, 0.999), the budget's schedule, masked CE on a batch
    from the task's numpy stream, and per-step records; subclasses draw batches and evaluate."""

    def __init__(self, model, budget: Budget, seed: int, device, log, files: dict | None,
                 info: D.DistInfo | None = None):
        self.info = info or D.DistInfo()
        torch.manual_seed(seed + self.info.rank)  # dropout differs per process; the batch stream (numpy) does not
        self.model, self.budget, self.device, self.log = model, budget, device, log
        self.rng = np.random.default_rng(seed)
        self.history, self.evals = [], []
        self._files = json_payloads(files)
        self.clock = Stopwatch()  # training time over the whole run, resumes included

    def make_optimizer(self, model):
        b = self.budget
        return build_adamw(model, b.lr, weight_decay=b.weight_decay, betas=(0.9, 0.999))

    def lr_at(self, step: int) -> float:
        return lr_at(step, self.budget)

    def loss(self, model, micro: int) -> torch.Tensor:
        x, y = _on(self.device, self.batch())  # the global batch, the same on every process
        if not self.info.enabled:
            return masked_ce(model(x), y)
        # This process's slice, its CE summed and divided by the global label count (× world, as DDP averages
        # the gradients): the global batch's mean CE, however the labels (or a last, partial RegBench batch) fall
        # between the slices.
        n = (y != -100).sum().clamp(min=1)
        x, y = D.local_part((x, y), self.info)
        logits = model(x)  # (B / world, T, V)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100,
                             reduction="sum")
        return ce * self.info.world / n

    def after_step(self, step, loss, lr, seconds):
        self.history.append(dict(step=step, loss=loss, lr=lr))
        return self.check(step, self.history[-1])

    def state(self) -> dict:
        return {"data_rng": self.rng.bit_generator.state, "history": self.history, "evals": self.evals,
                **self.clock.state()}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["data_rng"]
        self.history, self.evals = state["history"], state["evals"]
        self.clock.load_state(state)

    def files(self) -> dict[str, bytes]:
        return self._files


class RegBenchTask(_IclTask):
    """Shuffled epochs over the training automata; validation loss every eval_every steps keeps the best state."""

    def __init__(self, model, data: RegBench, budget: Budget, seed: int, device, log, files=None, info=None):
        super().__init__(model, budget, seed, device, log, files, info)
        self.train_set, self.val = data.train, data.val[: budget.val_subset]
        self.best = dict(val_loss=float("inf"), step=0, state=copy.deepcopy(model.state_dict()))
        self.order, self.pos = self.rng.permutation(len(self.train_set)), 0

    def batch(self):  # shuffled epochs; the last partial batch is kept
        if self.pos >= len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.train_set)), 0
        idx = self.order[self.pos : self.pos + self.budget.batch_size]
        self.pos += self.budget.batch_size
        return collate([self.train_set[i] for i in idx])

    def check(self, step, record):
        b = self.budget
        if step % b.eval_every == 0 or step == b.steps:
            vl = regbench_loss(self.model, self.val, b.batch_size, self.device)
            self.evals.append(dict(step=step, val_loss=vl))
            if vl < self.best["val_loss"]:
                self.best = dict(val_loss=vl, step=step, state=copy.deepcopy(self.model.state_dict()))
            self.log(f"  step {step:5d}/{b.steps}  loss {record['loss']:.4f}  val {vl:.4f}  lr {record['lr']:.2e}  "
                     f"{self.clock.elapsed():6.0f}s")

    def state(self) -> dict:
        return {**super().state(), "order": self.order.tolist(), "pos": self.pos, "best": self.best}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.order, self.pos, self.best = np.array(state["order"], dtype=np.int64), state["pos"], state["best"]


class StreamTask(_IclTask):
    """A fresh batch from sample(rng) every step; evaluate(model) on a fixed test batch every eval_every steps;
    a time limit stops early (after a last evaluation)."""

    def __init__(self, model, sample, evaluate, budget: Budget, seed: int, device, log, time_limit_s=None,
                 files=None, info=None):
        super().__init__(model, budget, seed, device, log, files, info)
        self.sample, self.evaluate, self.time_limit_s = sample, evaluate, time_limit_s

    def batch(self):
        return self.sample(self.rng)

    def check(self, step, record):
        b, limit = self.budget, self.time_limit_s
        out_of_time = limit is not None and D.any_flag(self.clock.elapsed() > limit, self.info, self.device)
        if step % b.eval_every == 0 or step == b.steps or out_of_time:
            self.model.eval()
            with torch.no_grad():
                m = self.evaluate(self.model)
            self.model.train()
            self.evals.append(dict(step=step, **m))
            self.log(f"  step {step:5d}/{b.steps}  loss {record['loss']:.4f}  test acc {m['accuracy']:.4f}  "
                     f"{self.clock.elapsed():6.0f}s")
        if out_of_time:
            self.log(f"  time limit {limit:g}s reached after {step} of {b.steps} steps")
            return True  # stop
        return False


def _loop(task: _IclTask, grad_clip, device, progress, out, resume, amp) -> Loop:
    return Loop(task, steps=task.budget.steps, out=out, grad_clip=grad_clip or 0.0,
                checkpoint_every=task.budget.eval_every, keep=2, progress=progress, info=task.info,
                device=device or "cpu", amp=amp, resume=resume, command="mosaic icl")


def train_regbench(model, data: RegBench, budget: Budget, *, seed: int = 0, grad_clip: float | None = None,
                   test_subset: int | None = None, log=print, device="cpu", progress: bool = False,
                   out: str | Path | None = None, resume=None, amp=None, files: dict | None = None,
                   info: D.DistInfo | None = None) -> dict:
    """Train on data.train, select by validation loss, score the best state on data.test. Returns a result dict.
    out: write checkpoints there (with `files`, JSON-able dicts, beside the weights); resume: (checkpoint, state)
    to continue from (training/loop.resume_run); amp: the autocast dtype (CUDA) or None; info: this process
    under torchrun (training/distributed.setup), None in one process."""
    task = RegBenchTask(model, data, budget, seed, device, log, files, info)
    _loop(task, grad_clip, device, progress, out, resume, amp).run()
    train_time = task.clock.elapsed()
    model.load_state_dict(task.best["state"])
    test = data.test[:test_subset] if test_subset else data.test
    t1 = time.monotonic()
    test_metrics = regbench_evaluate(model, test, budget.batch_size, device)
    return dict(
        accuracy=test_metrics["accuracy"], tvd=test_metrics["tvd"], test=test_metrics,
        best_step=task.best["step"], best_val_loss=task.best["val_loss"], steps=budget.steps, budget=asdict(budget),
        grad_clip=grad_clip, train_seconds=train_time, test_seconds=time.monotonic() - t1, history=task.history,
        evals=task.evals, n_train=len(data.train), n_test=len(test), n_val=len(task.val),
    )


def train_stream(model, sample, evaluate, budget: Budget, *, seed: int = 0, grad_clip: float | None = None,
                 log=print, device="cpu", progress: bool = False, time_limit_s: float | None = None,
                 out: str | Path | None = None, resume=None, amp=None, files: dict | None = None,
                 info: D.DistInfo | None = None) -> dict:
    """Fresh batches from sample(rng) -> (x, y) every step; evaluate(model) -> dict with 'accuracy' on a fixed
    test batch every eval_every steps. Returns the final metrics and the curve (no checkpoint selection: the
    stream has no overfitting to select against). Batches go to `device` (the model must already be there).
    time_limit_s: stop (after a last evaluation) once training has taken this long; `steps` reports the steps done.
    out / resume / amp / files / info: as train_regbench."""
    task = StreamTask(model, sample, evaluate, budget, seed, device, log, time_limit_s, files, info)
    _loop(task, grad_clip, device, progress, out, resume, amp).run()
    final = task.evals[-1]
    return dict(accuracy=final["accuracy"], tvd=None, final=final, steps=len(task.history), budget=asdict(budget),
                grad_clip=grad_clip, train_seconds=task.clock.elapsed(), history=task.history, evals=task.evals)
