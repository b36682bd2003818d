"""The configuration of a three-moons run (or the 1-head vs 3-head comparison): every field is a `mosaic moons`
flag and a recipe key.

    from memory_mosaics.moons import MoonsConfig, run_moons
    summary = run_moons(MoonsConfig(heads=3, seed=100, out="runs/moons-3"))
    summary = run_moons(MoonsConfig(compare=True, seeds=(100, 101, 102), out="runs/moons"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config import ConfigError, at_least, check_choices
from .data import BLOCK


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class MoonsConfig:
    heads: Optional[int] = _f(None, "train one model with this many heads", choices=(1, 3))
    compare: bool = _f(False, "train 1 head and 3 heads for each of seeds")
    out: str = _f("", "output directory")
    seed: int = _f(100, "seed for a single run")
    seeds: tuple[int, ...] = _f((100, 101, 102), "seeds for compare")
    iters: int = _f(500, "training iterations")
    batch: int = _f(64, "windows per batch")
    block: int = _f(BLOCK, "window length in steps")
    eval_windows: int = _f(512, "random windows per evaluated triple")
    context_stride: int = _f(5, "evaluate every Nth context length")
    threads: int = _f(1, "torch CPU threads")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N (training; evaluation runs on the CPU)")
    dtype: str = _f("float32", "float32 | bfloat16 | float16 | auto: autocast for the training forward (mixed "
                               "precision is CUDA-only)", choices=("float32", "bfloat16", "float16", "auto"))
    checkpoint_every: int = _f(50, "save a checkpoint every N iterations (and at the last one)")
    progress: bool = _f(True, "show a progress bar")
    resume: bool = _f(False, "continue the run in --out from its last checkpoint (compare always continues "
                             "interrupted runs)")

    def __post_init__(self) -> None:
        check_choices(self)
        at_least(self, 1, "iters", "batch", "eval_windows", "context_stride", "threads", "checkpoint_every")
        if self.block < 30:
            raise ConfigError("block must be ≥ 30 (25 generated steps need room)", key="block")
        self.seeds = tuple(self.seeds)
