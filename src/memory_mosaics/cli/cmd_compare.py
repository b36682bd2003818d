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

import argparse

from .typed import add_dataclass_args, build_config, given_values, load_recipe


def add_parser(subparsers) -> None:
    from ..training.config import TrainConfig

    p = subparsers.add_parser("compare", help="language modelling: Memory Mosaic vs transformer, side by side",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="YAML file of training config values (flags override it)")
    g = p.add_argument_group("comparison")
    g.add_argument("--models", nargs="+", choices=("mosaic", "transformer"), default=["mosaic", "transformer"])
    g.add_argument("--inits", nargs="+", choices=("preset", "library", "gpt2"), default=["preset"],
                   help="initialisation / output head of every model (default: each preset's own)")
    g.add_argument("--seeds", nargs="+", type=int, default=[1337], help="one run per seed (default 1337)")
    g.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="learning-rate sweep (default: --lr); min-lr keeps the ratio --min-lr / --lr")
    g.add_argument("--ood-data", default="", help="text scored after training, never trained on (e.g. shakespeare)")
    g.add_argument("--contexts", nargs="+", type=int, default=[1, 2, 4],
                   help="per-position loss at these multiples of the training context (default 1 2 4)")
    g.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel worker processes (default: min(runs, CPU count)); one thread each on CPU")
    g.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (default off: exact float32)")
    add_dataclass_args(p, TrainConfig, skip=("model", "seed", "resume"))
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.compare import CompareConfig, compare
    from ..training.config import TrainConfig

    given = load_recipe(args.recipe, TrainConfig) if args.recipe else {}
    given.update(given_values(args, TrainConfig))
    for key in ("model", "seed", "resume"):
        given.pop(key, None)  # set per run
    out = given.pop("out", "")
    if not given.get("data"):
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    base = build_config(TrainConfig, base=given)
    compare(CompareConfig(base, out=out, models=tuple(args.models), inits=tuple(args.inits),
                          seeds=tuple(args.seeds), lrs=tuple(args.lrs or ()), ood_data=args.ood_data,
                          contexts=tuple(args.contexts), jobs=args.jobs, tf32=args.tf32))
    return 0
