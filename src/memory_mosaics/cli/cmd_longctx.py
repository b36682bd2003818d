"""`mosaic longctx`: the long-context benchmark — multi-key retrieval over TinyStories, trained at one length and
scored at longer ones, six models side by side (Memory Mosaic v1, v2 and two v2 ablations, GPT-2, rotary).

    mosaic longctx --out runs/longctx                                     # the default comparison (CPU: slow)
    mosaic longctx --out runs/lc --device cuda --jobs 3 --steps 600       # one GPU, three models at a time
    mosaic longctx --out runs/lc --models v1 v2 --eval-lens 256 1024 --steps 50 --n-eval 16   # a quick look

Writes <out>/longctx.json, <out>/table.md (accuracy by evaluation length × needle depth), <out>/longctx.png, and
<out>/<model>/result.json; prints the compact table last. --jobs N trains the models in N child processes (each
`mosaic longctx --models NAME --write-summary false`), then writes the summary. See docs/long_context.md.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..longctx import LongContextConfig
from .typed import add_command, to_argv


def add_parser(subparsers) -> None:
    add_command(subparsers, "longctx", LongContextConfig, run, description=__doc__,
                help="long-context multi-key retrieval benchmark (six models)")


def run(cfg: LongContextConfig) -> int:
    from ..longctx.experiment import prepare, run_longctx, summarize
    from ..processes import run_commands

    jobs = min(cfg.jobs, len(cfg.models))
    if jobs <= 1:
        run_longctx(cfg)
        return 0
    filler = prepare(cfg)  # read once here; each child process reads it once for its model
    print(f"mosaic longctx: {len(cfg.models)} models, {jobs} in parallel x {cfg.threads} thread(s) on {cfg.device}; "
          f"train at {cfg.train_len}, evaluate at {list(cfg.eval_lens)}", flush=True)
    t0 = time.time()
    run_commands("longctx", [(name, to_argv(replace(cfg, models=(name,), jobs=1, write_summary=False)))
                             for name in cfg.models], jobs, cfg.threads, 0.2)
    summarize(cfg, t0, filler=filler)
    return 0
