"""Side-by-side experiments in child processes (`mosaic icl --compare`, `mosaic longctx --jobs N`)."""

from __future__ import annotations

import subprocess
import time


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
