"""`mosaic bench`: training and generation speed, side by side (see memory_mosaics/bench.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="side-by-side speed/memory benchmark: Memory Mosaic vs reference vs transformer",
                       description=__doc__)
    p.add_argument("--preset", default="small", help="model preset for all variants (default: small)")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[256, 1024, 4096], help="training sequence lengths")
    p.add_argument("--tokens-per-batch", type=int, default=2048)
    p.add_argument("--gen-contexts", type=int, nargs="+", default=[256, 1024, 4096], help="prompt lengths")
    p.add_argument("--gen-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reference-max-len", type=int, default=4096, help="skip the T×T reference path above this T")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--skip", nargs="*", default=[], choices=["train", "generate"])
    p.add_argument("--quick", action="store_true", help="small lengths and 3 repeats: a smoke run in seconds")
    p.add_argument("--out", default=None,
                   help="where to write the JSON results (default: runs/bench.json; with --quick: nowhere)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..bench import BenchConfig, format_table, run_benchmarks, save

    from ..training.distributed import parse_device

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    args.device = str(parse_device(args.device))
    cfg = BenchConfig(preset=args.preset, seq_lens=tuple(args.seq_lens), tokens_per_batch=args.tokens_per_batch,
                      gen_contexts=tuple(args.gen_contexts), gen_new_tokens=args.gen_new_tokens, repeats=args.repeats,
                      reference_max_len=args.reference_max_len, device=args.device, dtype=args.dtype,
                      skip=tuple(args.skip))
    if args.quick:
        cfg = BenchConfig(preset="tiny", vocab_size=256, seq_lens=(64, 128), tokens_per_batch=256, gen_contexts=(32, 64),
                          gen_new_tokens=16, uncached_max_tokens=16, repeats=3, warmup=1, device=args.device,
                          dtype=args.dtype, skip=tuple(args.skip))
    result = run_benchmarks(cfg)
    print()
    print(format_table(result))
    out = args.out or (None if args.quick else "runs/bench.json")  # a smoke run leaves the working tree alone
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save(result, out)
        print(f"\nwrote {out}")
    return 0
