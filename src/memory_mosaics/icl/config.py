"""The configuration of one ICL run (or a comparison): every field is a `mosaic icl` flag and a recipe key.

    from memory_mosaics.icl import IclConfig, run_icl
    result = run_icl(IclConfig(task="regbench", model="mosaic", envs=100, budget="demo", out="runs/rb-mm"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from ..config import ConfigError, at_least, check_choices

TASKS = ("regbench", "induction", "mqar")
# Fields a resumed run may change; every other field must match the checkpoint's train_config.json.
RESUME_MUTABLE = ("out", "resume", "progress", "device", "threads", "jobs", "tag")


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class IclConfig:
    task: str = _f("regbench", "in-context learning task", choices=TASKS)
    model: Optional[str] = _f(None, "train one model", choices=("mosaic", "transformer"))
    compare: bool = _f(False, "train the Memory Mosaic and the transformer(s)")
    out: str = _f("", "output directory")
    layers: Optional[int] = _f(None, "blocks (default 2 for RegBench; 1 for induction/MQAR, where compare adds 1- "
                                     "and 2-layer transformers)")
    seed: int = _f(0, "training seed: initialisation and batch order")
    data_seed: int = _f(0, "dataset seed")
    budget: str = _f("demo", "full: the paper protocol (RegBench: 200 epochs, lr 5e-4); demo: a stated CPU reduction "
                             "(RegBench: 80 steps at lr 2e-3, dropout off) — the same for every model",
                     choices=("demo", "full"))
    steps: Optional[int] = _f(None, "override the budget's number of steps")
    lr: Optional[float] = _f(None, "override the budget's peak learning rate")
    dropout: Optional[str] = _f(None, "override the budget's dropout (on = the presets' dropout; off = none, ~4x "
                                      "faster on CPU)", choices=("on", "off"))
    threads: int = _f(1, "torch CPU threads per run")
    jobs: int = _f(2, "compare: runs in parallel, one thread each")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    dtype: str = _f("float32", "float32 | bfloat16 | float16 | auto: autocast for the training forward (mixed "
                               "precision is CUDA-only)", choices=("float32", "bfloat16", "float16", "auto"))
    progress: bool = _f(True, "show a progress bar")
    resume: bool = _f(False, "continue the run in --out from its last checkpoint (with --compare: each run that has one)")
    tag: str = _f("", "log prefix (set for the runs of a comparison)", hidden=True)
    # RegBench
    envs: int = _f(100, "RegBench: training automata N")
    n_test: int = _f(1000, "RegBench: held-out automata T, split test/val")
    test_subset: Optional[int] = _f(None, "RegBench: score only the first K test automata")
    # induction head / MQAR
    corpus: Optional[str] = _f(None, "induction: text file for the bigram statistics (e.g. tiny Shakespeare); "
                                     "default: a random sparse bigram over vocab tokens (the CPU fallback)")
    triggers: int = _f(5, "induction: trigger tokens K")
    random_triggers: bool = _f(False, "induction: fresh triggers per sequence")
    seq_len: Optional[int] = _f(None, "sequence length (induction: 256 with corpus, else 64; MQAR: 64)")
    vocab: Optional[int] = _f(None, "vocabulary (induction fallback: 32; MQAR: 8192)")
    pairs: int = _f(4, "MQAR: key-value pairs D")
    test_batch: int = _f(256, "induction/MQAR: fixed test sequences")

    def __post_init__(self) -> None:
        check_choices(self)
        at_least(self, 1, "envs", "n_test", "threads", "jobs", "triggers", "pairs", "test_batch", "layers", "seq_len",
                 "vocab", "test_subset", "steps")
        if self.n_test < 2:
            raise ConfigError("n_test must be ≥ 2 (it is split into test and validation automata)", key="n_test")
        if self.lr is not None and not 0 < self.lr < math.inf:  # also refuses nan
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}", key="lr")
        if self.corpus is not None and not Path(self.corpus).is_file():
            raise ConfigError(f"no such file: {self.corpus}", key="corpus")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
