"""CUDA check of the one experiment layer (issue 12): ICL (RegBench) and three moons train on the GPU through the
shared training loop, picked by `device="auto"`, and land near the CPU numbers. Not run in CI (no GPU).

    OUT=/tmp/ex PYTHONPATH=src python3 examples/experiments_cuda_check.py     # ~1-2 min on one GPU; JSON in $OUT
    DEVICE=cpu ... (a smoke run without a GPU: both columns on the CPU)

Each part is small (RegBench: 2-layer mosaic, 10 steps, 50 test automata; moons: 3 heads, 20 iterations, 16
evaluation windows). Prints a table last: per run, the device used, the final training loss and the test metric
on CPU and on the GPU, and their difference (GPU kernels differ in round-off, so near, not equal)."""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, "src")
from memory_mosaics.icl import IclConfig, run_icl  # noqa: E402
from memory_mosaics.moons import MoonsConfig, run_moons  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/gpu_out"))
OUT.mkdir(parents=True, exist_ok=True)
GPU = os.environ.get("DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
rows = []
for name, make in (
        ("regbench mosaic", lambda dev, out: run_icl(IclConfig(task="regbench", model="mosaic", envs=20, n_test=100,
                                                               test_subset=50, steps=10, device=dev, out=out,
                                                               progress=False))),
        ("moons 3 heads", lambda dev, out: run_moons(MoonsConfig(heads=3, seed=100, iters=20, eval_windows=16,
                                                                 context_stride=50, device=dev, out=out,
                                                                 progress=False), log=lambda s: None))):
    res = {}
    for dev in ("cpu", GPU):
        t0 = time.time()
        run_dir = OUT / f"{name.replace(' ', '_')}_{dev}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a folder holding a run is refused without resume
        r = make(dev, str(run_dir))
        loss = r["history"][-1]["loss"] if "history" in r else r["final_loss"]
        metric = r.get("accuracy", r.get("val", {}).get("error_5", [None])[-1])
        res[dev] = dict(loss=loss, metric=metric, seconds=round(time.time() - t0, 1))
    rows.append((name, res))
(OUT / "experiments_cuda_check.json").write_text(json.dumps(rows, indent=1))
print(f"\n{'run':18s} {'device':8s} {'loss cpu':>10s} {'loss gpu':>10s} {'metric cpu':>11s} {'metric gpu':>11s} "
      f"{'|Δloss|':>9s} {'s cpu':>6s} {'s gpu':>6s}")
for name, res in rows:
    c, g = res["cpu"], res[GPU]
    print(f"{name:18s} {GPU:8s} {c['loss']:10.5f} {g['loss']:10.5f} {c['metric']:11.4f} {g['metric']:11.4f} "
          f"{abs(c['loss'] - g['loss']):9.2e} {c['seconds']:6.1f} {g['seconds']:6.1f}")
