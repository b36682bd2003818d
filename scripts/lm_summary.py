"""Compact summary of `mosaic compare` folders: one row per corpus × steps × model × head (mean ± std over seeds).

    python3 scripts/lm_summary.py OUT_PREFIX COMPARE_DIR [COMPARE_DIR ...]    # writes OUT_PREFIX.md and .json
"""

import json
import math
import sys
from pathlib import Path

import numpy as np


def stat(values):
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None)


def fmt(m, s):
    return "n/a" if m is None else (f"{m:.3f}" if s is None else f"{m:.3f}±{s:.3f}")


def preset_init(run):
    """The head a run used when it took its preset's default."""
    try:
        from memory_mosaics.config import CONFIGS
    except ImportError:
        return "preset"
    cfg = run["train"]
    return CONFIGS[run["model"]].preset(cfg["preset"], **cfg["model_args"]).init


def rows(report, name):
    out = []
    groups = {}
    for r in report["runs"]:
        groups.setdefault((r["model"], r["init"], r["lr"]), []).append(r)
    for (model, init, lr), runs in groups.items():
        one = [r["positions"]["1"]["per_position"] for r in runs]
        half = len(one[0]) // 2
        row = dict(run=name, data=Path(report["data"]).name, steps=report["steps"], model=model,
                   init=init if init != "preset" else preset_init(runs[0]),
                   seeds=len(runs), params=runs[0]["summary"]["params"],
                   val=stat(r["summary"]["val_loss"] for r in runs),
                   pos0=stat(p[0] for p in one), pos_late=stat(float(np.mean(p[half:])) for p in one),
                   ctx2=stat((r["positions"].get("2") or {}).get("loss") for r in runs),
                   ctx4=stat((r["positions"].get("4") or {}).get("loss") for r in runs),
                   ctx4_within=stat((r["positions"].get("4") or {}).get("within") for r in runs),
                   ctx4_beyond=stat((r["positions"].get("4") or {}).get("beyond") for r in runs),
                   ood=stat(r["ood"]["loss"] for r in runs) if report["ood_data"] else (None, None),
                   tok_s=float(np.mean([r["summary"]["train_tok_per_s"] or 0 for r in runs])))
        out.append(row)
    return out


def main(prefix, *folders):
    table = []
    for f in folders:
        path = Path(f) / "compare.json"
        if not path.exists():
            print(f"missing {path} (that comparison failed: see the log)")
            continue
        table += rows(json.loads(path.read_text()), Path(f).name)
    head = ("| run | model | head | seeds | params | val loss | pos 0 | pos ½T..T | 2× ctx | 4× ctx | "
            "4×: pos <T | 4×: pos ≥T | OOD | tok/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        lines.append(f"| {r['run']} | {r['model']} | {r['init']} | {r['seeds']} | {r['params']:,} | {fmt(*r['val'])} | "
                     f"{fmt(*r['pos0'])} | {fmt(*r['pos_late'])} | {fmt(*r['ctx2'])} | {fmt(*r['ctx4'])} | "
                     f"{fmt(*r['ctx4_within'])} | {fmt(*r['ctx4_beyond'])} | "
                     f"{fmt(*r['ood'])} | {r['tok_s']:,.0f} |")
    text = "\n".join(lines)
    Path(prefix + ".md").write_text(text + "\n")
    Path(prefix + ".json").write_text(json.dumps(table, indent=1))
    print("\n" + text)
    print("\nval loss: fixed validation windows at the training context T (mean±std over seeds); pos 0 / pos ½T..T: "
          "per-position loss; k× ctx: windows of k·T tokens; 4×: pos <T / ≥T: those windows split at T (same text); "
          "OOD: the other corpus. tok/s: training throughput per run (runs share the device).")


if __name__ == "__main__":
    main(*sys.argv[1:])
