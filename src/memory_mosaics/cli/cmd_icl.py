"""`mosaic icl`: in-context learning benchmarks — RegBench, induction head, MQAR — Memory Mosaic vs transformer."""

from __future__ import annotations

import argparse

TASKS = ("regbench", "induction", "mqar")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "icl", help="in-context learning benchmarks (RegBench, induction head, MQAR)",
        description="Train a Memory Mosaic or a matched transformer (same width, heads, depth; plus a position table) "
                    "on an in-context learning task and "
                    "write results.json (accuracy, tvd, config, steps, wall time) and a plot to --out. --compare "
                    "trains both and prints a table beside the published numbers.")
    p.add_argument("--task", choices=TASKS, default="regbench")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--model", choices=("mosaic", "transformer"), help="train one model")
    mode.add_argument("--compare", action="store_true", help="train the Memory Mosaic and the transformer(s)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--layers", type=int, default=None,
                   help="blocks (default 2 for RegBench; 1 for induction/MQAR, where --compare adds 1- and 2-layer "
                        "transformers)")
    p.add_argument("--seed", type=int, default=0, help="training seed: initialisation and batch order (default 0)")
    p.add_argument("--data-seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--budget", choices=("demo", "full"), default="demo",
                   help="full: the paper protocol (RegBench: 200 epochs, lr 5e-4); demo: a stated CPU reduction "
                        "(RegBench: 80 steps at lr 2e-3, dropout off) — the same for every model")
    p.add_argument("--steps", type=int, default=None, help="override the budget's number of steps")
    p.add_argument("--lr", type=float, default=None, help="override the budget's peak learning rate")
    p.add_argument("--dropout", choices=("on", "off"), default=None,
                   help="override the budget's dropout (on = the presets' dropout; off = none, ~4x faster on CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    p.add_argument("--jobs", type=int, default=2, help="--compare: runs in parallel, one thread each (default 2)")
    p.add_argument("--tag", default="", help=argparse.SUPPRESS)  # log prefix of --compare children
    g = p.add_argument_group("RegBench")
    g.add_argument("--envs", type=int, default=100, help="training automata N (default 100)")
    g.add_argument("--n-test", type=int, default=1000, help="held-out automata T, split test/val (default 1000)")
    g.add_argument("--test-subset", type=int, default=None, help="score only the first K test automata")
    g = p.add_argument_group("induction head / MQAR")
    g.add_argument("--corpus", default=None,
                   help="induction: text file for the bigram statistics (e.g. tiny Shakespeare); default: a random "
                        "sparse bigram over --vocab tokens (the CPU fallback)")
    g.add_argument("--triggers", type=int, default=5, help="induction: trigger tokens K (default 5)")
    g.add_argument("--random-triggers", action="store_true", help="induction: fresh triggers per sequence")
    g.add_argument("--seq-len", type=int, default=None,
                   help="sequence length (induction: 256 with --corpus, else 64; MQAR: 64)")
    g.add_argument("--vocab", type=int, default=None, help="vocabulary (induction fallback: 32; MQAR: 8192)")
    g.add_argument("--pairs", type=int, default=4, help="MQAR: key-value pairs D (default 4)")
    g.add_argument("--test-batch", type=int, default=256, help="induction/MQAR: fixed test sequences (default 256)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cli import UserError

    for name in ("envs", "n_test", "threads", "jobs", "triggers", "pairs", "test_batch"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be ≥ 1")
    if args.n_test < 2:
        raise UserError("--n-test must be ≥ 2 (it is split into test and validation automata)")
    for name in ("layers", "seq_len", "vocab", "test_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be ≥ 1")
    if args.corpus is not None:
        from pathlib import Path

        if not Path(args.corpus).is_file():
            raise UserError(f"--corpus: no such file: {args.corpus}")
    from ..icl.experiment import run_compare, run_one

    if args.compare:
        run_compare(args)
    else:
        run_one(args)
    return 0
