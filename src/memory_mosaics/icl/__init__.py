"""In-context learning benchmarks: RegBench (regular languages), the induction-head task and MQAR, with the
training loops and reports behind `mosaic icl`. See docs/icl.md.

    from memory_mosaics.icl import IclConfig, run_icl
    result = run_icl(IclConfig(task="regbench", model="mosaic", envs=100, budget="demo", out="runs/rb-mm"))
"""

from .config import IclConfig
from .experiment import compare_runs, run_icl, summarize_compare

__all__ = ["IclConfig", "run_icl", "compare_runs", "summarize_compare"]
