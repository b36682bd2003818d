"""`mosaic longctx`: the long-context benchmark — multi-key retrieval over TinyStories, trained at one length and
scored at longer ones, six models side by side (Memory Mosaic v1, v2 and two v2 ablations, GPT-2, rotary).

    mosaic longctx --out runs/longctx                                     # the default comparison (CPU: slow)
    mosaic longctx --out runs/lc --device cuda --jobs 3 --steps 600       # one GPU, three models at a time
    mosaic longctx --out runs/lc --models v1 v2 --eval-lens 256 1024 --steps 50 --n-eval 16   # a quick look

Writes <out>/longctx.json, <out>/table.md (accuracy by evaluation length × needle depth), <out>/longctx.png, and
<out>/<model>/result.json; prints the compact table last. See docs/long_context.md.
"""

from __future__ import annotations

from ..longctx import LongContextConfig
from .typed import add_command


def add_parser(subparsers) -> None:
    add_command(subparsers, "longctx", LongContextConfig, run, description=__doc__,
                help="long-context multi-key retrieval benchmark (six models)")


def run(cfg: LongContextConfig) -> int:
    from ..longctx import run_longctx

    if not cfg.out:
        raise ValueError("--out DIR is required")
    run_longctx(cfg)
    return 0
