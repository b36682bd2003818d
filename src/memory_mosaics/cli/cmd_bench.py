"""`mosaic bench`: training and generation speed, side by side (see memory_mosaics/bench.py).

    mosaic bench --out runs/bench.json
    mosaic bench --quick                      # the `quick` preset: small lengths, 3 repeats, seconds; writes nothing
    mosaic bench --quick --repeats 5          # flags override the preset
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..bench import QUICK, BenchConfig
from ..config import at_least
from .typed import add_command


@dataclass
class BenchCommand(BenchConfig):
    """BenchConfig plus what only the command needs."""

    quick: bool = field(default=False, metadata={"help": "start from the `quick` preset (a smoke run in seconds)"})
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    out: Optional[str] = field(default=None, metadata={
        "help": "where to write the JSON results (default: runs/bench.json; with --quick: nowhere)"})


def add_parser(subparsers) -> None:
    add_command(subparsers, "bench", BenchCommand, run, description=__doc__,
                help="side-by-side speed/memory benchmark: Memory Mosaic vs reference vs transformer",
                preset=lambda given: QUICK if given.get("quick") else {})


def run(cfg: BenchCommand) -> int:
    from dataclasses import asdict, fields

    import torch

    from ..bench import format_table, run_benchmarks, save
    from ..training.distributed import parse_device

    if cfg.threads is not None:
        at_least(cfg, 1, "threads")
        torch.set_num_threads(cfg.threads)
    values = asdict(cfg)
    bench = BenchConfig(**{f.name: values[f.name] for f in fields(BenchConfig)})
    bench.device = str(parse_device(bench.device))
    bench.core_vocab = bench.core_vocab or None  # --core-vocab 0 skips the core case
    result = run_benchmarks(bench)
    print()
    print(format_table(result))
    out = cfg.out or (None if cfg.quick else "runs/bench.json")  # a smoke run leaves the working tree alone
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save(result, out)
        print(f"\nwrote {out}")
    return 0
