"""`mosaic icl`: in-context learning benchmarks — RegBench, induction head, MQAR — Memory Mosaic vs transformer.

Train a Memory Mosaic or a matched transformer (same width, heads, depth; plus a position table) on an in-context
learning task and write results.json (accuracy, tvd, config, steps, wall time) and a plot to --out. --compare
trains both (in --jobs parallel processes) and prints a table beside the published numbers.

    mosaic icl --task regbench --compare --envs 100 --budget demo --out runs/regbench-demo
    mosaic icl --task induction --model mosaic --steps 600 --lr 3e-3 --out runs/ind-mm
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..icl.config import IclConfig
from .typed import add_command, to_argv


def add_parser(subparsers) -> None:
    add_command(subparsers, "icl", IclConfig, run, description=__doc__, one_of=("model", "compare"),
                help="in-context learning benchmarks (RegBench, induction head, MQAR)")


def run(cfg: IclConfig) -> int:
    from ..icl.experiment import compare_runs, run_icl, summarize_compare
    from ..processes import run_commands

    if not cfg.compare:
        run_icl(cfg)
        return 0
    children = compare_runs(cfg)
    jobs = max(1, min(cfg.jobs, len(children)))
    threads = 1 if jobs > 1 else cfg.threads
    print(f"mosaic icl --compare: {cfg.task}, {len(children)} runs, {jobs} in parallel x {threads} thread(s)",
          flush=True)
    t0 = time.time()
    run_commands("icl", [(name, to_argv(replace(child, threads=threads, progress=child.progress and jobs == 1)))
                         for name, child in children], jobs, threads)
    summarize_compare(cfg, t0)
    return 0
