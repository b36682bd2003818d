"""Run `mosaic` subcommands in parallel child processes (what `mosaic icl --compare --jobs N` does)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from . import UserError


def run_children(runs: list[tuple[str, list[str]]], jobs: int, threads: int) -> None:
    """runs: (name, mosaic argv) pairs, `jobs` at a time with `threads` CPU threads each; the first failure stops
    the others and raises UserError naming it."""
    pending, active = list(runs), []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    while pending or active:
        while pending and len(active) < jobs:
            name, argv = pending.pop(0)
            active.append((name, subprocess.Popen([sys.executable, "-m", "memory_mosaics.cli", *argv], env=env)))
        time.sleep(0.5)
        for name, proc in list(active):
            if proc.poll() is not None:
                active.remove((name, proc))
                if proc.returncode != 0:
                    for _, other in active:
                        other.terminate()
                    raise UserError(f"run '{name}' failed with exit status {proc.returncode} (its log is above)")
