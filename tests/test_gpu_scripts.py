"""The GPU scripts' dry runs on the CPU (GPU_SMOKE=1: tiny settings, same commands), so they do not fail on the GPU
box for a reason a CPU could have caught. Slow (minutes on 2 cores): `make test-slow`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script,files", [
    ("gpu_paper_width.sh", ["paper_width.tar.gz", "paper_width_summary.md", "paper_width_summary.json",
                            "paper_width.log"]),
    ("gpu_lm_compare.sh", ["lm_compare.tar.gz", "lm_compare_summary.md", "lm_compare_summary.json",
                           "lm_compare.log"]),
])
def test_gpu_script_dry_run(script, files, tmp_path, shared_data):
    env = {**os.environ, "GPU_SMOKE": "1", "DEVICE": "cpu", "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "w"),
           "PYTHON": sys.executable, "DATA_DIR": str(shared_data), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(ROOT / "scripts" / script)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)  # ≤ 8 files come back
    rows = json.loads((tmp_path / "out" / files[2]).read_text())
    assert {r["model"] for r in rows} == {"mosaic", "transformer"}
    assert any("| mosaic |" in line for line in res.stdout.splitlines()[-20:])  # the table is printed last


@pytest.mark.slow
def test_gpu_speed_step_parts_smoke_on_cpu(tmp_path):
    """scripts/gpu_speed.py's step parts (eager and torch.compile) and its table, at a tiny size on the CPU."""
    env = {**os.environ, "GPU_SPEED_DEVICE": "cpu", "OUT": str(tmp_path), "GPU_T": "32", "GPU_LAYERS": "1",
           "GPU_BATCH": "1", "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    for part in ("step", "step_compiled", "table"):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_speed.py"), part], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    compiled = json.loads((tmp_path / "step_compiled.json").read_text())
    assert compiled["compiled"] and [r["variant"] for r in compiled["rows"]] == ["mosaic (compiled)", "transformer"]
    assert "[step_compiled]" in res.stdout and "[step]" in res.stdout
