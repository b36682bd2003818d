"""`mosaic compare`: language modelling, Memory Mosaic vs transformer side by side (what `mosaic icl --compare`
is for the in-context learning tasks). Same tokens, schedule and budget for every run; optional seeds, heads
(--inits) and a learning-rate sweep applied identically to both models; runs in parallel processes (--jobs).

    mosaic compare --data ../shared/data/tinystories_train_head.txt --tokenizer bpe --bpe-vocab-size 2048 \\
        --max-steps 150 --warmup-steps 50 --lr 3e-3 --min-lr 3e-4 --eval-interval 50 \\
        --inits gpt2 library --seeds 1 2 3 --ood-data ../shared/data/tinyshakespeare.txt --out runs/cmp

Writes OUT/compare.json (every curve and score), OUT/table.md, OUT/compare.png and one run folder per run
under OUT/runs/. Every `mosaic train` flag applies to all runs (except --model, --seed, --out, --resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from ..config import MOSAIC_INITS
from ..training.compare import MODELS, check_either_model_args
from ..training.config import TrainConfig
from .typed import add_command


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class CompareCommand(TrainConfig):
    """Every `mosaic train` field (shared by all runs), plus what the comparison varies."""

    models: tuple[str, ...] = _f(("mosaic", "transformer"), "models compared", choices=MODELS)
    inits: tuple[str, ...] = _f(("preset",), "initialisation / output head of every model (preset: each preset's own; "
                                "v2, like --model-args init=v2, is the Memory Mosaic's only: with --models mosaic)",
                                choices=("preset", *MOSAIC_INITS))
    seeds: tuple[int, ...] = _f((1337,), "one run per seed")
    lrs: tuple[float, ...] = _f((), "learning-rate sweep (default: --lr); min-lr keeps the ratio --min-lr / --lr")
    ood_data: str = _f("", "text scored after training, never trained on (e.g. shakespeare)")
    contexts: tuple[int, ...] = _f((1, 2, 4), "per-position loss at these multiples of the training context")
    jobs: Optional[int] = _f(None, "runs in parallel worker processes (default: min(runs, CPU count)); one thread "
                                   "each on CPU")
    tf32: bool = _f(False, "allow TF32 matmuls on CUDA (default off: exact float32)")

    def _check_model_args(self) -> None:  # fields of either model: CompareConfig sends each to its model's runs
        check_either_model_args(self.model_args)


def add_parser(subparsers) -> None:
    add_command(subparsers, "compare", CompareCommand, run, description=__doc__, skip=("model", "seed", "resume"),
                help="language modelling: Memory Mosaic vs transformer, side by side")


def run(cfg: CompareCommand) -> int:
    from ..training.compare import CompareConfig, compare

    if not cfg.data:
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    shared = {f.name: getattr(cfg, f.name) for f in fields(TrainConfig) if f.name not in ("out", "model_args")}
    compare(CompareConfig(TrainConfig(**shared), out=cfg.out, models=cfg.models, inits=cfg.inits, seeds=cfg.seeds,
                          lrs=cfg.lrs, ood_data=cfg.ood_data, contexts=cfg.contexts, jobs=cfg.jobs, tf32=cfg.tf32,
                          model_args=dict(cfg.model_args)))
    return 0
