"""Side-by-side experiments in child processes (`mosaic icl --compare`, `mosaic longctx --jobs N`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def run_commands(command: str, runs: list[tuple[str, list[str]]], jobs: int, threads: int,
                 poll_s: float = 0.5) -> None:
    """run_parallel of `mosaic COMMAND ARGS...` children, (name, ARGS) each, with `threads` CPU threads apiece.
    The children import this package: from an uninstalled checkout (scripts/gpu_longctx.sh) via PYTHONPATH."""
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": src + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
    run_parallel([(name, [sys.executable, "-m", "memory_mosaics.cli", command, *args]) for name, args in runs],
                 jobs, env, poll_s)


def run_parallel(runs: list[tuple[str, list[str]]], jobs: int, env: dict[str, str], poll_s: float = 0.5) -> None:
    """Run each (name, argv) as a child process, at most `jobs` at a time, their output going to ours. The first
    failure terminates the others and raises ChildProcessError naming the run (the CLI prints it as one line)."""
    pending, active = list(runs), []
    while pending or active:
        while pending and len(active) < jobs:
            name, argv = pending.pop(0)
            active.append((name, subprocess.Popen(argv, env=env)))
        time.sleep(poll_s)
        for name, proc in list(active):
            if proc.poll() is not None:
                active.remove((name, proc))
                if proc.returncode != 0:
                    for _, p in active:
                        p.terminate()
                    raise ChildProcessError(f"run '{name}' failed with exit status {proc.returncode} (its log is above)")
