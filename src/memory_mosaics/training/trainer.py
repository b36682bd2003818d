"""Language-model training for both models (single process, or torchrun + DDP / FSDP): the task behind
training/loop.py's Loop (data, loss, evaluation, metrics.csv, summary).

    from memory_mosaics.training import TrainConfig, train
    summary = train(TrainConfig(model="mosaic", preset="tiny", data="input.txt", out="runs/x", max_steps=200))

Batches are drawn by one generator seeded identically on every process: each optimizer step draws
`batch_size` window starts per step (split into grad_accum micro-batches, each split across processes), so the
data a step sees does not depend on the number of processes — 2 processes × 4 sequences train exactly like
1 process × 8. Schedule: linear warm-up then cosine to min_lr (optim.warmup_cosine). Evaluation uses a fixed
set of validation windows so curves from different runs and models are comparable.

SIGINT / SIGTERM stop the run at the next step boundary with a checkpoint (loop.py: `TrainingInterrupted`;
`mosaic train` exits 130 / 143); resuming from it continues bit-exactly.
"""

from __future__ import annotations

import math
import os
import sys
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
from ..optim import build_adamw, warmup_cosine
from . import checkpoint as ckpt_io
from . import distributed as D
from .config import TrainConfig, changed_fields, merge_for_resume
from .loop import Loop, StopOnSignal, Stopwatch, Task, TrainingInterrupted, autocast_dtype, check_out
from .metrics import MetricsLog


def prepare_data(cfg: TrainConfig, tokenizer=None):
    """(tokenizer, train tokens, val tokens, content key). The tokenizer is trained unless one is given.
    The data is streamed (data/sources.iter_segments): memory does not grow with the corpus."""
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg.tokenizer, cfg.data, cfg.bpe_vocab_size)
    key = content_key(cfg.data, tokenizer)
    tokens = tokenize_cached(cfg.data, tokenizer, key=key, verify=cfg.verify_cache)
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


def train(cfg: TrainConfig, tokenizer=None, given: dict | None = None) -> dict:
    """Train as configured; returns the summary also written to OUT/summary.json ({} on ranks other than 0).
    cfg.resume continues the run in cfg.out: its saved config with the `given` fields applied (default: those of
    cfg that differ from the defaults; `mosaic train` passes its flags) — refused where they would change the run.
    A resumed run already at max_steps changes nothing and returns its existing summary. A given tokenizer is
    used instead of training one (training/compare.py: every run on the same tokens)."""
    out = check_out(cfg.out, cfg.resume)
    resume = None
    if cfg.resume:  # decided once, here: the checkpoint to continue, and the config it continues with
        resume = ckpt_io.resumable(out, log=_note if int(os.environ.get("RANK", 0)) == 0 else None)
        cfg = merge_for_resume(ckpt_io.read_json(resume[0], "train_config.json"), changed_fields(cfg) if given is None else given)
    if not cfg.data:
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    stop = StopOnSignal()
    try:
        task = LanguageModelTask.prepare(cfg, out, info, device, resume, tokenizer)
        return task.summary_if_done() if task.done else task.fit(resume, stop)
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


class LanguageModelTask(Task):
    """One language-model training run as the loop's task: its data, model and sampler; the loss of a
    micro-batch, evaluation and metrics.csv after a step; the sampler and data key in each checkpoint."""

    @classmethod
    def prepare(cls, cfg: TrainConfig, out: Path, info: D.DistInfo, device: torch.device, resume,
                tokenizer=None) -> LanguageModelTask:
        """Everything that can fail on user input, before the first write to OUT."""
        self = cls()
        self.cfg, self.out, self.info, self.device = cfg, out, info, device
        self.amp_dtype = autocast_dtype(cfg.dtype, device)
        self.micro_global = cfg.batch_size // cfg.grad_accum  # sequences per micro-step over all processes
        D.check_divisible(self.micro_global, "batch_size / grad_accum =", info.world)
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
            # A run keeps the head it started with, and the scan chunk it was saved with (a default may change;
            # the chunk changes only round-off), unless --model-args sets them.
            kept = {k: getattr(saved_config, k) for k in ("init", "scan_chunk")
                    if hasattr(saved_config, k) and k not in cfg.model_args}
            self.model_config = self.model_config.replace(**kept)
            if saved_config != self.model_config:
                raise ConfigError(f"cannot resume: the checkpoint's model config {saved_config.to_dict()} differs "
                                  f"from this run's {self.model_config.to_dict()}")
        torch.manual_seed(cfg.seed)  # identical initialisation on every process
        self.model = build_model(self.model_config).to(device)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed + info.rank)  # dropout differs per process, as in the reference
        self.clock = Stopwatch()  # the run's time, resumes included (metrics.csv and summary elapsed_s)
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

    # The task's pieces (loop.Task).
    def make_optimizer(self, model):
        cfg = self.cfg
        return build_adamw(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        return warmup_cosine(step, lr=cfg.lr, warmup=cfg.warmup_steps, total=cfg.decay_steps, min_lr=cfg.min_lr)

    def loss(self, model, micro: int) -> torch.Tensor:
        """A micro-batch of windows drawn by the shared sampler: the same data whatever the process count."""
        starts = torch.randint(len(self.train_tok) - self.block, (self.micro_global,), generator=self.sampler)
        x, y = windows_at(self.train_tok, D.local_part(starts, self.info).tolist(), self.block)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    def evaluate(self) -> float:
        eval_bs = self.cfg.eval_batch_size or self.micro_global  # independent of the process count
        return per_position_loss(self.model, self.val_tok, self.block, self.cfg.eval_batches, eval_bs,
                                 seed=self.cfg.seed + 1, device=self.device, autocast_dtype=self.amp_dtype).loss

    def after_step(self, step: int, loss: float, lr: float, seconds: float) -> None:
        """Evaluation and a metrics.csv row on their intervals; tokens/s over the steps since the last row."""
        cfg = self.cfg
        self.train_loss = loss
        self.steps_since += 1
        self.train_time += seconds
        if not math.isfinite(loss):
            raise ValueError(f"training loss is {loss} at step {step}; lower --lr or use --dtype float32")
        is_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        row_val = None
        if is_eval:
            self.val_loss = row_val = self.evaluate()
        if step % cfg.log_interval == 0 or is_eval:
            self.tok_s = self.steps_since * self.tokens_per_step / max(self.train_time, 1e-9)
            self.total_train_time += self.train_time
            self.steps_since, self.train_time = 0, 0.0
            if self.metrics:
                self.metrics.log(step=step, tokens=step * self.tokens_per_step, lr=lr, train_loss=loss,
                                 val_loss=row_val if row_val is not None else "", tok_per_s=round(self.tok_s, 1),
                                 elapsed_s=round(self.clock.elapsed(), 3))

    def postfix(self) -> dict:
        return dict(val=f"{self.val_loss:.4f}", tok_s=f"{self.tok_s:,.0f}")

    def state(self) -> dict:
        return {"sampler": self.sampler.get_state(), "data_key": self.key, **self.clock.state()}

    def load_state(self, state: dict) -> None:
        self.sampler.set_state(state["sampler"])
        self.clock.load_state(state)

    def files(self) -> dict[str, bytes]:
        return ckpt_io.lm_files(self.model_config.to_dict(), self.tokenizer.to_dict(), self.cfg.to_dict())

    def _open_log(self, step: int) -> MetricsLog | None:
        if not self.info.main:
            return None
        cfg, out = self.cfg, self.out
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create --out {out}: {err.strerror or err}") from None
        metrics = MetricsLog(out, cfg, resume_step=step if self.saved is not None else None)
        if self.saved is not None:
            _note(_schedule_note(cfg, step))
        print(f"{cfg.model} ({cfg.preset}): {self.model.num_params():,} parameters, vocab "
              f"{self.model_config.vocab_size}, context {self.block}; {len(self.train_tok):,} train / "
              f"{len(self.val_tok):,} val tokens; {self.info.world} process(es) on {self.device}", flush=True)
        return metrics

    def fit(self, resume, stop: StopOnSignal) -> dict:
        """The loop (loop.Loop: DDP / FSDP, mixed precision, checkpoints, signals), then the summary."""
        cfg, info, out = self.cfg, self.info, self.out
        fsdp = cfg.fsdp and (info.enabled or self.saved is None)  # an FSDP run resumed in one process: unsharded
        loop = Loop(self, steps=cfg.max_steps, out=out, grad_clip=cfg.grad_clip, accum=cfg.grad_accum,
                    checkpoint_every=cfg.checkpoint_interval or cfg.eval_interval, keep=cfg.keep_checkpoints,
                    progress=cfg.progress, info=info, device=self.device, amp=self.amp_dtype, fsdp=fsdp,
                    compile=cfg.compile, resume=resume)
        self.metrics = self._open_log(loop.step)
        self.tokens_per_step = cfg.batch_size * self.block
        self.steps_since, self.train_time, self.total_train_time = 0, 0.0, 0.0
        self.train_loss = self.val_loss = float("nan")
        self.tok_s = 0.0
        try:
            loop.run(stop)
        except TrainingInterrupted as stopped:
            if stopped.last:  # the training is complete: its summary too, so a resume has nothing left to do
                self._summary(loop)
            elif self.metrics:
                self.metrics.close()
            raise
        return self._summary(loop)

    def _summary(self, loop: Loop) -> dict:
        """summary.json of the run (process 0; the others return {}); closes metrics.csv."""
        cfg, info, out = self.cfg, self.info, self.out
        trained_steps = loop.step - (self.saved["step"] if self.saved is not None else 0)
        summary = {"model": cfg.model, "preset": cfg.preset, "params": self.model.num_params(), "step": loop.step,
                   "tokens": loop.step * self.tokens_per_step, "train_loss": self.train_loss,
                   "val_loss": self.val_loss,
                   "val_perplexity": math.exp(min(self.val_loss, 700)) if math.isfinite(self.val_loss) else None,
                   "elapsed_s": round(self.clock.elapsed(), 2), "processes": info.world,
                   "train_tok_per_s": round(trained_steps * self.tokens_per_step / self.total_train_time, 1)
                   if self.total_train_time > 0 else None}
        if not info.main:
            return {}
        self.metrics.close()
        (out / "summary.json").write_text(dumps(summary, indent=2))
        return summary
