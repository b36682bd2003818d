import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_longctx_script_shrunk_on_cpu(tmp_path):
    """scripts/gpu_longctx.sh with SHRINK=1: the GPU pipeline end to end on the CPU (~1 min)."""
    env = {**os.environ, "SHRINK": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_longctx.sh")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["env.txt", "log.txt", "longctx.json", "longctx.png", "table.md"]
    last = run.stdout.rstrip().splitlines()
    assert last[-1].startswith("| rotary |") and last[-8].startswith("| model |")  # header, rule, six rows
