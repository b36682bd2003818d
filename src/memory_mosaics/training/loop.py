"""The one training loop. Every experiment trains through it — language models (trainer.py), the ICL benchmarks
(icl/train.py) and three moons (moons/train.py) — and brings only a small task object (see `Task`): its model and
optimiser, how to draw a batch and score it, what to do after a step, and what else to save.

    loop = Loop(task, steps=100, out="runs/x", grad_clip=1.0, progress=True)
    loop.run()  # device placement, mixed precision, DDP / FSDP, clipping, schedule, progress bar with ETA,
                # checkpoints (checkpoint.py: ckpt-<step>/, safetensors + JSON, atomic), resume, SIGINT / SIGTERM

SIGINT / SIGTERM (Ctrl-C, or what a scheduler sends before killing a job) stop the run at the next step
boundary: a checkpoint of that step is written, then `TrainingInterrupted` is raised (the CLI exits 130 / 143).
Resuming from it continues bit-exactly. A signal during the last step (or one the task ends early at) stops the
same way, before what follows training (ICL / moons: the final evaluation and results; `mosaic train` writes its
summary first, having nothing after), which the resume then does. A second Ctrl-C stops at once (KeyboardInterrupt, no checkpoint).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from ..config import ConfigError
from ..optim import set_lr
from . import checkpoint as ckpt_io
from . import distributed as D


class Task:
    """What an experiment brings to the loop. Subclasses set `model` (the unwrapped module, already on its device)
    and implement `make_optimizer`, `lr_at` and `loss`; the other hooks are optional.

    The loop calls, in order: make_optimizer(model) once (after DDP / FSDP wrapping, after resume has loaded the
    weights); load_state(state) when resuming; then per step lr_at(step) (0-based), loss(model, micro) for each
    micro-batch (model: the wrapped module to call; under autocast when mixed precision is on), and
    after_step(step, loss, lr, seconds) (1-based step; True stops early). state() is saved in every checkpoint
    beside the weights, optimizer, GradScaler and RNG states; files() are extra checkpoint files (JSON bytes)."""

    model: torch.nn.Module

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def lr_at(self, step: int) -> float:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, micro: int) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int, loss: float, lr: float, seconds: float) -> bool | None:
        return None

    def postfix(self) -> dict:
        """Extra progress-bar fields (e.g. the last validation loss)."""
        return {}

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def files(self) -> dict[str, bytes]:
        return {}


class Stopwatch:
    """A run's training time across resumes: the seconds its earlier sessions recorded in their checkpoints plus
    this session's. A task saves `state()` in its checkpoints and hands the saved dict to `load_state` on resume,
    so a time limit and the reported time cover the whole run."""

    KEY = "elapsed_s"

    def __init__(self):
        self.before, self.start = 0.0, time.monotonic()  # monotonic: a wall-clock jump is no training time

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.start

    def state(self) -> dict:
        return {self.KEY: self.elapsed()}

    def load_state(self, state: dict) -> None:
        self.before = float(state.get(self.KEY, 0.0))  # a checkpoint from before the field: this session only


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM stopped training at a step boundary, after saving a checkpoint of that step."""

    def __init__(self, signum: int, step: int, checkpoint: Path, command: str = "mosaic train", last: bool = False):
        self.signum, self.step, self.checkpoint, self.last = signum, step, checkpoint, last
        name = signal.Signals(signum).name
        how = (f"`mosaic train --out {checkpoint.parent} --resume`" if command == "mosaic train" else
               f"the same `{command}` command plus --resume")  # its flags give the config that must match
        if last:  # training is over: what follows it (evaluation, results) is what a resume does
            super().__init__(f"stopped by {name} at step {step}, the last of training; saved {checkpoint} — "
                             f"{how} finishes the run")
        else:
            super().__init__(f"stopped by {name} at step {step}; saved {checkpoint} — continue with {how}")


class StopOnSignal:
    """Records SIGINT / SIGTERM instead of dying, so the loop can checkpoint at the next step boundary.
    A second SIGINT raises KeyboardInterrupt at once. Only the main thread can set handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def arm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)

    def disarm(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """None (float32) or the autocast dtype for auto | float32 | bfloat16 | float16; mixed precision only on CUDA."""
    if dtype == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype == "float32":
        return None
    if device.type != "cuda":
        raise ValueError(f"--dtype {dtype} (mixed precision) needs a CUDA device; use --dtype float32 on {device}")
    return getattr(torch, dtype)


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def progress_bar(total: int, enabled: bool, initial: int = 0):
    """tqdm with an ETA (to stderr), or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


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


def _writable_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above `path`: where creating `path` starts."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_out(out: str | Path, resume: bool) -> Path:
    """The run folder, refused (one line) where it cannot be written, where a new run would overwrite a run, or
    where a resume has nothing to continue."""
    if not out:
        raise ValueError("no output directory given (pass --out DIR)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    base = _writable_ancestor(out)
    if not base.is_dir():
        raise ValueError(f"cannot create --out {out}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to --out {out}: {base} is not writable" if base == out else
                         f"cannot create --out {out}: {base} is not writable")
    if resume and not ckpt_io.has_checkpoint(out):
        raise ValueError(f"nothing to resume: {out} has no checkpoint (drop --resume to start a new run)")
    if not resume and ckpt_io.has_checkpoint(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    return out


RUN_FILES = ("model.safetensors", "model_config.json", "train_config.json", "state.safetensors", "state.json")


def resume_run(out: Path, config: dict, mutable=(), log=None) -> tuple[Path, dict]:
    """(checkpoint, state) to continue the run in `out`, whose saved train_config.json must equal `config` on
    every field but `mutable` (else a one-line ConfigError naming what differs)."""
    ckpt, state = ckpt_io.resumable(out, log=log, need=RUN_FILES)
    saved = ckpt_io.read_json(ckpt, "train_config.json")
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in config.items()
             if k not in mutable and saved.get(k) != v]
    if diffs:
        raise ConfigError(f"cannot resume into a different config ({'; '.join(diffs)}); use a new --out to start "
                          f"a new run")
    return ckpt, state


class Loop:
    """Runs a Task for `steps` optimizer steps (see the module docstring). `resume`: (checkpoint, state) from
    checkpoint.resumable / resume_run; `out`: None writes no checkpoints (a signal then stops without one)."""

    def __init__(self, task: Task, *, steps: int, out: str | Path | None = None, grad_clip: float = 0.0,
                 accum: int = 1, checkpoint_every: int | None = None, keep: int = 2, progress: bool = False,
                 info: D.DistInfo | None = None, device: torch.device | str = "cpu", amp: torch.dtype | None = None,
                 fsdp: bool = False, compile: bool = False, resume: tuple[Path, dict] | None = None,
                 command: str = "mosaic train"):
        self.task, self.steps, self.out = task, steps, Path(out) if out else None
        self.grad_clip, self.accum, self.keep, self.progress = grad_clip, accum, keep, progress
        self.checkpoint_every, self.command = checkpoint_every, command
        self.info, self.device, self.amp, self.fsdp = info or D.DistInfo(), torch.device(device), amp, fsdp
        self.raw = task.model
        ckpt, saved = resume if resume is not None else (None, None)
        if ckpt is not None:
            ckpt_io.load_weights(self.raw, ckpt / "model.safetensors")
        self.model = D.wrap(self.raw, self.info, self.device, fsdp)
        self.optimizer = task.make_optimizer(self.raw)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
        self.step = 0
        self.ended = False  # the task stopped the run early (after_step returned True): a resume runs no step
        if saved is not None:
            self._restore(ckpt, saved)
        self.fwd = torch.compile(self.model) if compile else self.model

    def _restore(self, ckpt: Path, saved: dict) -> None:
        info = self.info
        try:
            D.load_optim_state(self.model, self.optimizer, saved["optimizer"], self.fsdp)
            self.scaler.load_state_dict(saved["scaler"])
            rngs = saved["rng"]  # per rank; a run resumed on a different process count reuses rank 0's
            set_rng_state(rngs[info.rank] if len(rngs) == info.world else rngs[0], self.device)
            self.task.load_state(saved)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ckpt_io.CheckpointError(
                f"checkpoint {ckpt}: its training state does not fit this run "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        self.step, self.ended = saved["step"], bool(saved.get("ended", False))

    def no_sync(self, micro: int):
        """DDP all-reduces the gradients on the last micro-batch only."""
        last = micro == self.accum - 1
        return self.model.no_sync() if (self.info.enabled and not self.fsdp and not last) else nullcontext()

    def micro_loss(self, micro: int) -> torch.Tensor:
        with autocast(self.device, self.amp):
            return self.task.loss(self.fwd, micro)

    def save(self, at_step: int) -> Path:
        """ckpt-<at_step>: weights, the task's files, and the resumable state (checkpoint.py's format)."""
        info = self.info
        m_state = D.model_state(self.model, self.raw, self.fsdp)
        o_state = D.optim_state(self.model, self.optimizer, self.fsdp)
        rngs = D.gather_objects(rng_state(self.device), info)
        if info.main:
            state = {"step": at_step, "ended": self.ended, "optimizer": o_state, "scaler": self.scaler.state_dict(), "rng": rngs,
                     **self.task.state(), "world": info.world}
            payloads = {"model.safetensors": ckpt_io.weights_bytes(m_state), **self.task.files(),
                        **ckpt_io.state_payloads(state)}
            ckpt_io.write_checkpoint(self.out, at_step, payloads, self.keep)
        return self.out / f"ckpt-{at_step:07d}"

    def run(self, stop: StopOnSignal | None = None) -> int:
        """Train from self.step to `steps` (or until the task stops early); returns the step reached."""
        task, info = self.task, self.info
        stop = stop or StopOnSignal()
        bar = progress_bar(self.steps, self.progress and info.main, initial=self.step)
        self.model.train()
        if self.out is not None:  # from here on, SIGINT / SIGTERM mean "checkpoint at the next step boundary, then stop"
            stop.arm()
        try:
            while self.step < self.steps and not self.ended:
                t_step = time.monotonic()
                lr = task.lr_at(self.step)
                set_lr(self.optimizer, lr)
                losses = optimizer_step(self.model, self.optimizer, self.micro_loss, accum=self.accum,
                                        grad_clip=self.grad_clip, scaler=self.scaler, no_sync=self.no_sync)
                self.step += 1
                step = self.step
                loss = D.all_mean(torch.stack(losses).mean().item(), info, self.device)  # .item() syncs
                early = task.after_step(step, loss, lr, time.monotonic() - t_step)
                self.ended = bool(early)  # ends the while loop
                bar.set_postfix(loss=f"{loss:.4f}", **task.postfix(), refresh=False)
                bar.update(1)
                last = step == self.steps or self.ended
                every = self.checkpoint_every
                saved_now = self.out is not None and ((every and step % every == 0) or last)
                if saved_now:
                    self.save(step)
                signum = D.any_signal(stop.signum, info, self.device)  # every process stops at the same step
                if signum is not None:  # the last step too: the run stops before what follows training
                    raise TrainingInterrupted(signum, step, self.save(step) if not saved_now
                                              else self.out / f"ckpt-{step:07d}", self.command, last)
        finally:
            bar.close()
            stop.disarm()
        return self.step
