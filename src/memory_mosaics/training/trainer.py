"""The language-model training loop for both models (single process, or torchrun + DDP / FSDP).

    from memory_mosaics.training import TrainConfig, train
    summary = train(TrainConfig(model="mosaic", preset="tiny", data="input.txt", out="runs/x", max_steps=200))

Batches are drawn by one generator seeded identically on every process: each optimizer step draws
`batch_size` window starts per step (split into grad_accum micro-batches, each split across processes), so the
data a step sees does not depend on the number of processes — 2 processes × 4 sequences train exactly like
1 process × 8. Schedule: linear warm-up then cosine to min_lr (optim.warmup_cosine). Evaluation uses a fixed
set of validation windows so curves from different runs and models are comparable.

SIGINT / SIGTERM (Ctrl-C, or what a scheduler sends before killing a job) stop the run at the next step
boundary: a checkpoint of that step is written, then `TrainingInterrupted` is raised (`mosaic train` exits 130 /
143). Resuming from it continues bit-exactly. A second Ctrl-C stops at once (KeyboardInterrupt, no checkpoint).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import build_model
from ..config import CONFIGS, ConfigError, config_from_dict
from ..data import (
    build_tokenizer,
    check_length,
    content_key,
    tokenize_cached,
    tokenizer_from_dict,
    train_val_split,
    windows_at,
)
from ..evaluation import per_position_loss
from ..jsonsafe import dumps
from ..optim import build_adamw, set_lr, warmup_cosine
from . import checkpoint as ckpt_io
from . import distributed as D
from .config import TrainConfig, changed_fields, merge_for_resume
from .loop import optimizer_step, progress_bar
from .metrics import MetricsLog


def prepare_data(cfg: TrainConfig, tokenizer=None):
    """(tokenizer, train tokens, val tokens, content key). The tokenizer is trained unless one is given.
    The data is streamed (data/sources.iter_segments): memory does not grow with the corpus."""
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg.tokenizer, cfg.data, cfg.bpe_vocab_size)
    key = content_key(cfg.data, tokenizer)
    tokens = tokenize_cached(cfg.data, tokenizer, key=key)
    train_tok, val_tok = train_val_split(tokens, cfg.val_fraction)
    return tokenizer, train_tok, val_tok, key


def model_config_for(cfg: TrainConfig, vocab_size: int):
    """The preset with overrides, its vocabulary sized to the tokenizer (padded to vocab_multiple)."""
    padded = math.ceil(vocab_size / cfg.vocab_multiple) * cfg.vocab_multiple
    args = dict(cfg.model_args)
    if args.get("vocab_size", padded) < vocab_size:
        raise ConfigError(f"model_args vocab_size={args['vocab_size']} is smaller than the tokenizer's {vocab_size}")
    args.setdefault("vocab_size", padded)
    return CONFIGS[cfg.model].preset(cfg.preset, **args)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None (float32) or the autocast dtype; mixed precision only on CUDA."""
    if cfg.dtype == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if cfg.dtype == "float32":
        return None
    if device.type != "cuda":
        raise ValueError(f"--dtype {cfg.dtype} (mixed precision) needs a CUDA device; use --dtype float32 on {device}")
    return getattr(torch, cfg.dtype)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM stopped training at a step boundary, after saving a checkpoint of that step."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}; saved {checkpoint} — continue with "
                         f"`mosaic train --out {checkpoint.parent} --resume`")


class _StopOnSignal:
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


def _writable_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above `path`: where creating `path` starts."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_out_dir(cfg: TrainConfig) -> Path:
    if not cfg.out:
        raise ValueError("no output directory given (pass --out DIR)")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    base = _writable_ancestor(out)
    if not base.is_dir():
        raise ValueError(f"cannot create --out {out}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to --out {out}: {base} is not writable" if base == out else
                         f"cannot create --out {out}: {base} is not writable")
    if cfg.resume and not ckpt_io.has_checkpoint(out):
        raise ValueError(f"nothing to resume: {out} has no checkpoint (drop --resume to start a new run)")
    if not cfg.resume and ckpt_io.has_checkpoint(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    return out


def train(cfg: TrainConfig, tokenizer=None, given: dict | None = None) -> dict:
    """Train as configured; returns the summary also written to OUT/summary.json ({} on ranks other than 0).
    cfg.resume continues the run in cfg.out: its saved config with the `given` fields applied (default: those of
    cfg that differ from the defaults; `mosaic train` passes its flags) — refused where they would change the run.
    A resumed run already at max_steps changes nothing and returns its existing summary. A given tokenizer is
    used instead of training one (training/compare.py: every run on the same tokens)."""
    out = _check_out_dir(cfg)
    resume = None
    if cfg.resume:  # decided once, here: the checkpoint to continue, and the config it continues with
        resume = ckpt_io.resumable(out, log=_note if int(os.environ.get("RANK", 0)) == 0 else None)
        cfg = merge_for_resume(ckpt_io.read_json(resume[0], "train_config.json"), changed_fields(cfg) if given is None else given)
    if not cfg.data:
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    stop = _StopOnSignal()
    try:
        run = _Run.prepare(cfg, out, info, device, resume, tokenizer)
        return run.summary_if_done() if run.done else run.fit(stop)
    finally:
        stop.disarm()
        D.teardown()


def _note(msg: str) -> None:
    print(f"mosaic train: {msg}", file=sys.stderr, flush=True)


def _schedule_note(cfg: TrainConfig, step: int) -> str:
    """Which learning-rate schedule a resumed run follows, and how to stretch it."""
    text = (f"resuming at step {step} of {cfg.max_steps}; learning rate: {cfg.warmup_steps} warm-up steps, "
            f"cosine from {cfg.lr:g} to {cfg.min_lr:g} at step {cfg.decay_steps}")
    if cfg.max_steps > cfg.decay_steps:
        text += (f"; steps {max(step, cfg.decay_steps) + 1}-{cfg.max_steps} run at min_lr {cfg.min_lr:g} "
                 f"(pass --lr-decay-steps {cfg.max_steps} to stretch the cosine over the longer run)")
    return text


class _Run:
    """One language-model training run: its data, model, optimiser and state, then the loop (training/loop.py's
    optimizer_step with DDP / FSDP, mixed precision, logging and checkpoints around it)."""

    @classmethod
    def prepare(cls, cfg: TrainConfig, out: Path, info: D.DistInfo, device: torch.device, resume,
                tokenizer=None) -> _Run:
        """Everything that can fail on user input, before the first write to OUT."""
        self = cls()
        self.cfg, self.out, self.info, self.device = cfg, out, info, device
        self.amp_dtype = autocast_dtype(cfg, device)
        self.micro_global = cfg.batch_size // cfg.grad_accum  # sequences per micro-step over all processes
        if self.micro_global % info.world:
            raise ConfigError(f"batch_size / grad_accum = {self.micro_global} must be divisible by the "
                              f"{info.world} processes")
        self.per_rank = self.micro_global // info.world
        self.ckpt_dir, self.saved = resume if resume is not None else (None, None)
        self.done = False
        if self.saved is not None:
            self._check_saved()
            if self.done:
                return self
            tokenizer = tokenizer_from_dict(ckpt_io.read_json(self.ckpt_dir, "tokenizer.json"))
            self.tokenizer, self.train_tok, self.val_tok, self.key = prepare_data(cfg, tokenizer)
            if self.key != self.saved["data_key"]:
                raise ConfigError(f"the data of {cfg.data} differs from the data this run was trained on; "
                                  f"resume with the same data or start a new run")
        else:
            self.tokenizer, self.train_tok, self.val_tok, self.key = prepare_data(cfg, tokenizer)
        self.model_config = model_config_for(cfg, self.tokenizer.vocab_size)
        self.block = self.model_config.block_size
        check_length(self.train_tok, self.block, "training")
        check_length(self.val_tok, self.block, "validation")
        if self.saved is not None:
            saved_config = config_from_dict(ckpt_io.read_json(self.ckpt_dir, "model_config.json"))
            if "init" not in cfg.model_args:  # a run keeps the head it started with (a preset's default may change)
                self.model_config = self.model_config.replace(init=saved_config.init)
            if saved_config != self.model_config:
                raise ConfigError(f"cannot resume: the checkpoint's model config {saved_config.to_dict()} differs "
                                  f"from this run's {self.model_config.to_dict()}")
        self._build()
        return self

    def _check_saved(self) -> None:
        cfg, saved = self.cfg, self.saved
        missing = [k for k in ("optimizer", "scaler", "rng", "sampler", "data_key") if k not in saved]
        if missing:
            raise ckpt_io.CheckpointError(f"checkpoint {self.ckpt_dir}: its training state lacks {', '.join(missing)}")
        if saved["step"] > cfg.max_steps:
            raise ConfigError(f"the run in {self.out} is at step {saved['step']}, past --max-steps {cfg.max_steps}; "
                              f"nothing was changed (pass a larger --max-steps to continue)")
        if saved["step"] == cfg.max_steps:
            if self.info.main:
                _note(f"the run in {self.out} is already at step {saved['step']} = --max-steps: nothing to do, "
                      f"nothing changed (pass a larger --max-steps to continue)")
            self.done = True

    def summary_if_done(self) -> dict:
        summary = self.out / "summary.json"
        return ckpt_io.read_json(self.out, "summary.json") if self.info.main and summary.is_file() else {}

    def _build(self) -> None:
        """Model (identically initialised on every process), wrapper, optimiser, scaler, sampler; the saved
        state restored when resuming."""
        cfg, info, device, saved = self.cfg, self.info, self.device, self.saved
        torch.manual_seed(cfg.seed)  # identical initialisation on every process
        self.raw = build_model(self.model_config).to(device)
        if saved is not None:
            ckpt_io.load_weights(self.raw, self.ckpt_dir / "model.safetensors")
        self.model = D.wrap(self.raw, info, device, cfg.fsdp)
        self.optimizer = build_adamw(self.raw, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed + info.rank)  # dropout differs per process, as in the reference
        self.step = 0
        if saved is not None:
            try:
                D.load_optim_state(self.model, self.optimizer, saved["optimizer"], cfg.fsdp)
                self.scaler.load_state_dict(saved["scaler"])
                self.sampler.set_state(saved["sampler"])
                rngs = saved["rng"]  # per rank; a run resumed on a different process count reuses rank 0's
                set_rng_state(rngs[info.rank] if len(rngs) == info.world else rngs[0], device)
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
                raise ckpt_io.CheckpointError(
                    f"checkpoint {self.ckpt_dir}: its training state does not fit this run "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
            self.step = saved["step"]
        self.fwd = torch.compile(self.model) if cfg.compile else self.model

    # The task-specific pieces the loop runs: a micro-batch's loss, DDP's gradient sync, evaluation.
    def micro_loss(self, micro: int) -> torch.Tensor:
        """A micro-batch of windows drawn by the shared sampler: the same data whatever the process count."""
        starts = torch.randint(len(self.train_tok) - self.block, (self.micro_global,), generator=self.sampler)
        rank = self.info.rank
        x, y = windows_at(self.train_tok, starts.tolist()[rank * self.per_rank:(rank + 1) * self.per_rank], self.block)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext():
            logits = self.fwd(x)  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    def no_sync(self, micro: int):
        """DDP all-reduces the gradients on the last micro-batch only."""
        last = micro == self.cfg.grad_accum - 1
        return self.model.no_sync() if (self.info.enabled and not self.cfg.fsdp and not last) else nullcontext()

    def evaluate(self) -> float:
        eval_bs = self.cfg.eval_batch_size or self.micro_global  # independent of the process count
        return per_position_loss(self.raw, self.val_tok, self.block, self.cfg.eval_batches, eval_bs,
                                 seed=self.cfg.seed + 1, device=self.device, autocast_dtype=self.amp_dtype).loss

    def save(self, at_step: int) -> Path:
        cfg, info = self.cfg, self.info
        m_state = D.model_state(self.model, self.raw, cfg.fsdp)
        o_state = D.optim_state(self.model, self.optimizer, cfg.fsdp)
        rngs = D.gather_objects(rng_state(self.device), info)
        if info.main:
            state = {"step": at_step, "optimizer": o_state, "scaler": self.scaler.state_dict(), "rng": rngs,
                     "sampler": self.sampler.get_state(), "data_key": self.key, "world": info.world}
            ckpt_io.save_checkpoint(self.out, at_step, model_state=m_state, model_config=self.model_config.to_dict(),
                                    tokenizer=self.tokenizer.to_dict(), train_config=cfg.to_dict(), state=state,
                                    keep=cfg.keep_checkpoints)
        return self.out / f"ckpt-{at_step:07d}"

    def _open_log(self) -> MetricsLog | None:
        if not self.info.main:
            return None
        cfg, out = self.cfg, self.out
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create --out {out}: {err.strerror or err}") from None
        metrics = MetricsLog(out, cfg, resume_step=self.step if self.saved is not None else None)
        if self.saved is not None:
            _note(_schedule_note(cfg, self.step))
        print(f"{cfg.model} ({cfg.preset}): {self.raw.num_params():,} parameters, vocab "
              f"{self.model_config.vocab_size}, context {self.block}; {len(self.train_tok):,} train / "
              f"{len(self.val_tok):,} val tokens; {self.info.world} process(es) on {self.device}", flush=True)
        return metrics

    def fit(self, stop: _StopOnSignal) -> dict:
        """The loop: a step, then logging / evaluation / checkpoints on their intervals; a signal stops it at a
        step boundary with a checkpoint (TrainingInterrupted)."""
        cfg, info, out = self.cfg, self.info, self.out
        metrics = self._open_log()
        bar = progress_bar(cfg.max_steps, cfg.progress and info.main, initial=self.step)
        tokens_per_step = cfg.batch_size * self.block
        ckpt_every = cfg.checkpoint_interval or cfg.eval_interval
        t_start, steps_since, train_time, total_train_time = time.time(), 0, 0.0, 0.0  # train_time: no evals
        train_loss = val_loss = float("nan")
        tok_s = 0.0
        self.model.train()
        stop.arm()  # from here on, SIGINT / SIGTERM mean "checkpoint at the next step boundary, then stop"
        while self.step < cfg.max_steps:
            t_step = time.time()
            lr = warmup_cosine(self.step, lr=cfg.lr, warmup=cfg.warmup_steps, total=cfg.decay_steps,
                               min_lr=cfg.min_lr)
            set_lr(self.optimizer, lr)
            losses = optimizer_step(self.model, self.optimizer, self.micro_loss, accum=cfg.grad_accum,
                                    grad_clip=cfg.grad_clip, scaler=self.scaler, no_sync=self.no_sync)
            self.step += 1
            step = self.step
            steps_since += 1
            train_loss = D.all_mean(torch.stack(losses).mean().item(), info, self.device)  # .item() syncs
            train_time += time.time() - t_step
            if not math.isfinite(train_loss):
                raise ValueError(f"training loss is {train_loss} at step {step}; lower --lr or use --dtype float32")
            is_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
            is_log = step % cfg.log_interval == 0 or is_eval
            row_val = None
            if is_eval:
                val_loss = row_val = self.evaluate()
            if is_log:
                now = time.time()
                tok_s = steps_since * tokens_per_step / max(train_time, 1e-9)
                total_train_time += train_time
                steps_since, train_time = 0, 0.0
                if metrics:
                    metrics.log(step=step, tokens=step * tokens_per_step, lr=lr, train_loss=train_loss,
                                val_loss=row_val if row_val is not None else "", tok_per_s=round(tok_s, 1),
                                elapsed_s=round(now - t_start, 3))
            bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
            bar.update(1)
            saved_now = step % ckpt_every == 0 or step == cfg.max_steps
            if saved_now:
                self.save(step)
            signum = D.any_signal(stop.signum, info, self.device)  # every process stops at the same step
            if signum is not None and step < cfg.max_steps:
                bar.close()
                where = self.save(step) if not saved_now else out / f"ckpt-{step:07d}"
                if metrics:
                    metrics.close()
                raise TrainingInterrupted(signum, step, where)
        bar.close()
        trained_steps = self.step - (self.saved["step"] if self.saved is not None else 0)
        summary = {"model": cfg.model, "preset": cfg.preset, "params": self.raw.num_params(), "step": self.step,
                   "tokens": self.step * tokens_per_step, "train_loss": train_loss, "val_loss": val_loss,
                   "val_perplexity": math.exp(min(val_loss, 700)) if math.isfinite(val_loss) else None,
                   "elapsed_s": round(time.time() - t_start, 2), "processes": info.world,
                   "train_tok_per_s": round(trained_steps * tokens_per_step / total_train_time, 1)
                   if total_train_time > 0 else None}
        if not info.main:
            return {}
        metrics.close()
        (out / "summary.json").write_text(dumps(summary, indent=2))
        return summary
