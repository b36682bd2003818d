"""`mosaic moons`: the three-moons predictive-disentanglement experiment (1 head vs 3 heads, 54 parameters)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("moons", help="three-moons experiment: 1 head vs 3 heads (predictive disentanglement)",
                              description="Train the 54-parameter moons memory and measure generation error vs "
                                          "context length. Writes summary.json and PNG figures to --out.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--heads", type=int, choices=(1, 3), help="train one model with this many heads")
    mode.add_argument("--compare", action="store_true", help="train 1 head and 3 heads for each of --seeds")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=100, help="seed for a single run (default 100)")
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102], help="seeds for --compare")
    p.add_argument("--iters", type=int, default=500, help="training iterations (default 500)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--block", type=int, default=800, help="window length in steps (default 800)")
    p.add_argument("--eval-windows", type=int, default=512, help="random windows per evaluated triple")
    p.add_argument("--context-stride", type=int, default=5, help="evaluate every Nth context length (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cli import UserError

    for name in ("iters", "batch", "eval_windows", "context_stride", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if args.block < 30:
        raise UserError("--block must be >= 30 (25 generated steps need room)")
    import torch

    from ..moons.experiment import run_compare, run_single

    torch.set_num_threads(args.threads)
    common = dict(iters=args.iters, batch=args.batch, block=args.block, windows=args.eval_windows,
                  stride=args.context_stride)
    if args.compare:
        run_compare(args.out, seeds=tuple(args.seeds), **common)
    else:
        run_single(args.out, args.heads, args.seed, **common)
    return 0
