"""The LM view of docs/long_context.md: per-position loss of several runs past their training context, from the
`per_position.csv` that `mosaic eval --context-multiples 1 2 4` writes in each run's eval/ folder.

    python scripts/lm_view.py OUT.png runs/lm/v1 runs/lm/v2 runs/lm/rotary [--context 1024] [--train 256]

Prints, per run, the mean loss over each training-context-long quarter of the longest windows (the same windows
for every position) and the last-minus-first difference; draws the binned curves (plots.loss_curves)."""

import argparse
import csv
from pathlib import Path

import numpy as np

from memory_mosaics import plots

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("png")
p.add_argument("runs", nargs="+")
p.add_argument("--context", type=int, default=1024, help="the evaluated window (column loss_ctxN)")
p.add_argument("--train", type=int, default=256, help="the training context (dashed line, quarter width)")
a = p.parse_args()

curves = {}
for run in a.runs:
    with open(Path(run) / "eval" / "per_position.csv", newline="") as f:
        curve = np.array([float(r[f"loss_ctx{a.context}"]) for r in csv.DictReader(f)])
    curves[Path(run).name] = curve
    parts = [curve[i:i + a.train].mean() for i in range(0, len(curve), a.train)]
    print(f"{Path(run).name:>10}", " ".join(f"{x:.3f}" for x in parts), f"last-first {parts[-1] - parts[0]:+.3f}")
fig = plots.loss_curves(curves, block_size=a.train, binned=True,
                        title=f"per-position loss, {a.context}-token windows (trained at {a.train})")
plots.save(fig, a.png)
print("wrote", a.png)
