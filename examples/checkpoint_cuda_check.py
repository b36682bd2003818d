"""CUDA check of the safe checkpoints (issue 10): resume with fp16 (GradScaler state), bf16 and fp32 autocast and the
CUDA RNG state stored as safetensors + JSON, and SIGTERM -> checkpoint -> resume on a GPU. Not run in CI (no GPU).

    OUT=/tmp/ck PYTHONPATH=src python3 examples/checkpoint_cuda_check.py     # ~1-2 min on one GPU; logs in $OUT

Prints a table last: per dtype, whether 6 straight steps and 3 + resume + 3 steps both ran, the largest loss
difference between them (CUDA kernels are not all deterministic, so it may be small rather than 0), the saved
GradScaler state (fp16: scale and growth tracker) and whether a CUDA RNG state was saved."""
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(os.environ.get("OUT", "/tmp/gpu_out"))
OUT.mkdir(parents=True, exist_ok=True)
ENV = {**os.environ, "PYTHONPATH": "src", "MOSAIC_CACHE": str(OUT / "cache")}
random.seed(0)
text = OUT / "t.txt"
text.write_text("".join(random.choice("abcdefgh ijklmnop\n") for _ in range(60_000)))
BASE = [sys.executable, "-m", "memory_mosaics.cli", "train", "--preset", "tiny", "--batch-size", "8", "--warmup-steps",
        "2", "--eval-interval", "3", "--eval-batches", "2", "--log-interval", "1", "--no-progress", "--device", "cuda",
        "--lr", "1e-2", "--data", str(text)]
BASE[BASE.index("cuda")] = os.environ.get("DEVICE", "cuda")  # DEVICE=cpu: a smoke run without a GPU


def run(*extra):
    p = subprocess.run(BASE + list(extra), env=ENV, capture_output=True, text=True)
    (OUT / "log.txt").open("a").write(" ".join(extra) + f"\nrc {p.returncode}\n{p.stdout}\n{p.stderr}\n")
    return p


def losses(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


rows = []
for dtype in ("float16", "bfloat16", "float32"):
    a, b = OUT / f"straight-{dtype}", OUT / f"split-{dtype}"
    r1 = run("--dtype", dtype, "--max-steps", "6", "--out", str(a))
    r2 = run("--dtype", dtype, "--max-steps", "3", "--lr-decay-steps", "6", "--out", str(b))
    r3 = run("--out", str(b), "--resume", "--max-steps", "6")
    ok = r1.returncode == r2.returncode == r3.returncode == 0
    la, lb = (losses(a), losses(b)) if ok else ([], [])
    state = json.loads((b / "ckpt-0000006" / "state.json").read_text()) if ok else {}
    rows.append((dtype, ok, len(la), len(lb), max((abs(x - y) for x, y in zip(la, lb)), default=None),
                 la == lb, json.dumps(state.get("scaler"))[:60], "cuda" in json.dumps(state.get("rng"))))

# SIGTERM to a CUDA run
s = OUT / "sigterm"
p = subprocess.Popen(BASE + ["--max-steps", "100000", "--eval-interval", "100000", "--out", str(s)], env=ENV,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
t0 = time.time()
while time.time() - t0 < 120 and not ((s / "metrics.csv").exists() and len((s / "metrics.csv").read_text().splitlines()) > 5):
    time.sleep(0.1)
p.send_signal(signal.SIGTERM)
_, err = p.communicate(timeout=120)
ckpts = sorted(x.name for x in s.glob("ckpt-*"))
r4 = run("--out", str(s), "--resume", "--max-steps", str(int(ckpts[-1][5:]) + 2)) if ckpts else None

print("dtype     ok  steps(straight,split)  max|Δloss|  identical  scaler-state                       cuda-rng")
for d, ok, na, nb, diff, same, sc, cr in rows:
    print(f"{d:9} {ok!s:4} {na:3} {nb:3}               {diff!s:10}  {same!s:9}  {sc:34} {cr}")
print(f"SIGTERM: rc {p.returncode}, checkpoints {ckpts}, stderr {err.strip().splitlines()[-1:]}, "
      f"resume rc {r4.returncode if r4 else None}")
