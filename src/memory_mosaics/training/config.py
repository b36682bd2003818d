"""The training configuration: every field is a `mosaic train` flag (`lr_decay_steps` -> `--lr-decay-steps`)
and a key of a YAML recipe (recipes/*.yaml). Precedence: defaults < recipe < command line."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from ..config import CONFIGS, ConfigError, at_least, check_choices, check_keys


def _f(default, help: str, **meta):
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    # What to train on what.
    model: str = _f("mosaic", "model family", choices=tuple(CONFIGS))
    preset: str = _f("small", "model preset (tiny, small, icll, paper)")
    model_args: dict = _f({}, "model config overrides, e.g. --model-args n_layer=2 n_head=4")
    data: str = _f("", "text file, folder of text files, .jsonl of strings, or shakespeare / tinystories")
    out: str = _f("", "run directory: checkpoints, metrics.csv, summary.json")
    tokenizer: str = _f("char", "char | bpe (trained on the data) | gpt2 (tiktoken)", choices=("char", "bpe", "gpt2"))
    bpe_vocab_size: int = _f(2048, "vocabulary size of the trained BPE tokenizer")
    vocab_multiple: int = _f(1, "pad the model's vocabulary to a multiple of this (64 for GPU efficiency)")
    val_fraction: float = _f(0.1, "fraction of tokens (the end of the data) held out for validation")
    verify_cache: bool = _f(False, "hash the cached token file before using it (default: only when its size or "
                                   "mtime changed; a copy restored with cp -p / rsync -a keeps both)")
    # Optimisation (batch_size is global: sequences per optimizer step over all processes and micro-steps).
    batch_size: int = _f(16, "sequences per optimizer step, summed over processes and accumulation micro-steps")
    grad_accum: int = _f(1, "gradient-accumulation micro-steps per optimizer step")
    max_steps: int = _f(1000, "optimizer steps to train to (a resumed run continues up to this step)")
    lr: float = _f(3e-3, "peak learning rate")
    min_lr: float = _f(1e-4, "learning-rate floor reached at lr_decay_steps")
    warmup_steps: int = _f(100, "linear warm-up steps")
    lr_decay_steps: Optional[int] = _f(None, "step at which the cosine reaches min_lr (default: max_steps)")
    weight_decay: float = _f(0.1, "AdamW weight decay on tensors with ≥ 2 dims")
    beta1: float = _f(0.9, "AdamW β1")
    beta2: float = _f(0.95, "AdamW β2")
    grad_clip: float = _f(1.0, "clip the global gradient norm (0: off)")
    # Evaluation, logging, checkpoints.
    eval_interval: int = _f(200, "evaluate on the fixed validation batches every N steps (and at the end)")
    eval_batches: int = _f(10, "fixed validation batches per evaluation")
    eval_batch_size: Optional[int] = _f(None, "sequences per validation batch (default: batch_size / grad_accum; every process scores all)")
    checkpoint_interval: Optional[int] = _f(None, "save a checkpoint every N steps (default: eval_interval)")
    keep_checkpoints: int = _f(2, "keep the newest N checkpoints (a damaged newest one falls back to the next)")
    log_interval: int = _f(10, "write a metrics.csv row every N steps")
    seed: int = _f(1337, "seed for initialisation, data sampling and dropout (+rank)")
    # Hardware.
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    dtype: str = _f("auto", "auto | float32 | bfloat16 | float16 (autocast; mixed precision is CUDA-only)",
                    choices=("auto", "float32", "bfloat16", "float16"))
    compile: bool = _f(False, "torch.compile the model")
    fsdp: bool = _f(False, "shard parameters with FSDP (under torchrun) instead of DistributedDataParallel")
    threads: Optional[int] = _f(None, "torch CPU threads (default: torch's choice)")
    # Reporting.
    progress: bool = _f(True, "show a progress bar")
    tensorboard: bool = _f(False, "also log to TensorBoard (if installed) under OUT/tb")
    wandb: bool = _f(False, "also log to Weights & Biases (if installed)")
    wandb_project: str = _f("memory-mosaics", "W&B project")
    resume: bool = _f(False, "continue the run in --out from its last checkpoint")

    def __post_init__(self) -> None:
        check_choices(self)
        cls = CONFIGS[self.model]
        if self.preset not in cls.PRESETS:
            raise ConfigError(f"unknown preset '{self.preset}'; choose one of: {', '.join(cls.PRESETS)}", key="preset")
        self._check_model_args()
        at_least(self, 1, "batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "log_interval",
                 "bpe_vocab_size", "vocab_multiple", "keep_checkpoints")
        for name in ("checkpoint_interval", "lr_decay_steps", "eval_batch_size", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1 (or unset), got {getattr(self, name)}", key=name)
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size ({self.batch_size}) must be divisible by grad_accum ({self.grad_accum})",
                              key="batch_size", others=("grad_accum",))
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be ≥ 0, got {self.warmup_steps}", key="warmup_steps")
        self._check_optimisation()

    def _check_model_args(self) -> None:
        check_keys(CONFIGS[self.model], self.model_args)

    def _check_optimisation(self) -> None:
        """Values that train silently wrong (or not at all) are refused: lr > 0, 0 ≤ min_lr ≤ lr, ..."""
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "beta1", "beta2", "val_fraction"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}", key=name)
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}", key="lr")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be in [0, lr = {self.lr:g}], got {self.min_lr:g}", key="min_lr",
                              others=("lr",))
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)}", key=name)
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}", key=name)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}", key="val_fraction")

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps if self.lr_decay_steps is not None else self.max_steps

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Fields a resumed run may change; every other field must match the checkpoint's (else ConfigError).
RESUME_MUTABLE = {"max_steps", "eval_interval", "checkpoint_interval", "log_interval", "device", "compile",
                  "threads", "progress", "tensorboard", "wandb", "wandb_project", "resume", "out", "data",
                  "lr_decay_steps", "keep_checkpoints", "verify_cache"}


def changed_fields(cfg: TrainConfig) -> dict[str, Any]:
    """The fields of cfg that differ from their defaults: what a resumed run was asked to change."""
    defaults = TrainConfig()
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if getattr(cfg, f.name) != getattr(defaults, f.name)}


def merge_for_resume(saved: dict[str, Any], given: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with the explicitly given fields applied; a change to a field that shapes the
    model, the data or the optimisation trajectory is an error (say what differs)."""
    saved, given = _upgraded(saved), _upgraded(given, saved)
    if saved.get("lr_decay_steps") is None:
        saved["lr_decay_steps"] = saved["max_steps"]  # keep the schedule the run started with
    changed = sorted(k for k, v in given.items() if k not in RESUME_MUTABLE and k in saved and saved[k] != v)
    if changed:
        diffs = "; ".join(f"{k}: checkpoint {saved[k]!r}, now {given[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume into a different config ({diffs}); use a new --out to start a new run")
    return TrainConfig(**{**saved, **given, "resume": True})


def _upgraded(values: dict[str, Any], fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    """values with its model_args as today's fields (`upgrade_overrides`; model and preset from `fallback` where
    values lacks them), so that a run saved before a rename compares equal to itself."""
    values, fallback = dict(values), fallback or {}
    if "model_args" in values:
        model = values.get("model", fallback.get("model", TrainConfig.model))
        if model in CONFIGS:  # else TrainConfig reports it
            preset = values.get("preset", fallback.get("preset", TrainConfig.preset))
            values["model_args"] = CONFIGS[model].upgrade_overrides(preset, values["model_args"])
    return values
