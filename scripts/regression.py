"""Regression numbers of the experiment layer (issue 12): shortened, fixed configs whose results must not change
when the training code is refactored. Prints one line per number; run it on two checkouts and diff the output.

    OMP_NUM_THREADS=1 PYTHONPATH=src python3 scripts/regression.py OUT_DIR [icl] [moons] [lm]

ICL: RegBench, 20 steps of the demo budget, 100 test automata, Memory Mosaic and transformer (seed 0).
Moons: 3 heads, seed 100, 40 iterations (batch 64): the final training loss.
LM: tiny Memory Mosaic, 30 steps of batch 8 on tiny Shakespeare (../shared/data): final train / val loss and the sha256 of
metrics.csv without its timing columns (tok_per_s, elapsed_s)."""

import csv
import hashlib
import io
import shutil
import sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
parts = sys.argv[2:] or ["icl", "moons", "lm"]
torch.set_num_threads(1)
print("library:", __import__("memory_mosaics").__file__, flush=True)

if "icl" in parts:
    from memory_mosaics.icl import IclConfig, run_icl

    for model in ("mosaic", "transformer"):
        shutil.rmtree(out / f"icl-{model}", ignore_errors=True)
        r = run_icl(IclConfig(task="regbench", model=model, steps=20, test_subset=100, progress=False,
                              out=str(out / f"icl-{model}")))
        print(f"REGRESSION icl {model} accuracy {r['accuracy']:.8f} tvd {r['tvd']:.8f} "
              f"last loss {r['history'][-1]['loss']!r}", flush=True)

if "moons" in parts:
    from memory_mosaics.moons.train import train

    _, losses, _ = train(3, 100, 40, log=None)
    print(f"REGRESSION moons 3 heads seed 100 iters 40 final loss {losses[-1]:.8f} ({losses[-1]!r})", flush=True)

if "lm" in parts:
    from memory_mosaics.training import TrainConfig, train

    run = out / "lm"
    shutil.rmtree(run, ignore_errors=True)
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
    s = train(TrainConfig(model="mosaic", preset="tiny", data=str(data), out=str(run), max_steps=30, batch_size=8, progress=False,
                          threads=1))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    buf = io.StringIO()
    for row in rows:
        buf.write(",".join(v for k, v in row.items() if k not in ("tok_per_s", "elapsed_s")) + "\n")
    digest = hashlib.sha256(buf.getvalue().encode()).hexdigest()[:16]
    print(f"REGRESSION lm tiny 30 steps train {s['train_loss']!r} val {s['val_loss']!r} "
          f"metrics.csv (no timing) sha256 {digest} rows {len(rows)}", flush=True)
