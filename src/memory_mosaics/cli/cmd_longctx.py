"""`mosaic longctx`: the long-context benchmark — multi-key retrieval over TinyStories, trained at one length and
scored at longer ones, six models side by side (Memory Mosaic v1, v2 and two v2 ablations, GPT-2, rotary).

    mosaic longctx --out runs/longctx                                     # the default comparison (CPU: slow)
    mosaic longctx --out runs/lc --device cuda --jobs 3 --steps 600       # one GPU, three models at a time
    mosaic longctx --out runs/lc --models v1 v2 --eval-lens 256 1024 --steps 50 --n-eval 16   # a quick look

Writes <out>/longctx.json, <out>/table.md (accuracy by evaluation length × needle depth), <out>/longctx.png, and
<out>/<model>/result.json; prints the compact table last. See docs/long_context.md.
"""

from __future__ import annotations

import argparse

from .typed import add_dataclass_args, build_config


def add_parser(subparsers) -> None:
    from ..longctx import LongContextConfig

    p = subparsers.add_parser("longctx", help="long-context multi-key retrieval benchmark (six models)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="YAML file of config values (command-line flags override it)")
    add_dataclass_args(p, LongContextConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..longctx import LongContextConfig, run_longctx

    cfg = build_config(LongContextConfig, args, recipe=args.recipe)
    if not cfg.out:
        raise ValueError("--out DIR is required")
    run_longctx(cfg)
    return 0
