"""`mosaic eval`: loss, perplexity and the per-position loss curve of a checkpoint on some text.

    mosaic eval --checkpoint runs/sh-mosaic --data shakespeare
    mosaic eval --checkpoint runs/sh-gpt --data shakespeare --context-multiples 1 2 4 --out runs/sh-gpt/eval

Prints JSON (loss, perplexity, tokens at the training context, plus one entry per longer context) and writes
per_position.csv (position, loss at each evaluated context) and per_position.png. The Memory Mosaic has no
positional encoding, so it is scored past its training context; the transformer cannot go past block_size, and
the JSON says so for those contexts instead of failing.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .typed import add_dataclass_args, build_config


@dataclass
class EvalConfig:
    checkpoint: str = field(default="", metadata={"help": "checkpoint folder, or a run folder (uses its latest)"})
    data: str = field(default="", metadata={"help": "text source, as for `mosaic train`"})
    split: str = field(default="val", metadata={"help": "val / train: the training run's split; all: every token",
                                                "choices": ("val", "train", "all")})
    context_multiples: list[int] = field(default_factory=lambda: [1, 2, 4],
                                         metadata={"help": "contexts to score, as multiples of block_size"})
    batches: int = field(default=10, metadata={"help": "batches per context"})
    batch_size: int = field(default=8, metadata={"help": "windows per batch"})
    seed: int = field(default=0, metadata={"help": "seed of the (fixed) window positions"})
    out: Optional[str] = field(default=None, metadata={"help": "folder for CSV/PNG (default: CHECKPOINT/eval)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="loss, perplexity and per-position loss of a checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="YAML file of eval config values")
    add_dataclass_args(p, EvalConfig)
    p.set_defaults(func=run)


def write_curves(results: dict[int, object], out: Path, title: str) -> tuple[Path, Path]:
    """per_position.csv (one column per context) and per_position.png."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    contexts = sorted(results)
    longest = contexts[-1]
    csv_path = out / "per_position.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["position"] + [f"loss_ctx{c}" for c in contexts])
        for pos in range(longest):
            w.writerow([pos] + [f"{results[c].per_position[pos]:.6f}" if pos < c else "" for c in contexts])
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for c in reversed(contexts):
        loss = results[c].per_position
        line, = ax.plot(range(c), loss, lw=0.5, alpha=0.3)
        # Log-spaced bins: single positions are noisy; bin means show the trend.
        edges = np.unique(np.round(np.logspace(0, np.log10(c), 40)).astype(int))
        edges = np.concatenate([[0], edges[edges < c], [c]])
        centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
        means = [loss[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(centres, means, color=line.get_color(), lw=1.8, label=f"context {c}")
    ax.set(xlabel="position in context", ylabel="loss (nats)", title=title)
    ax.set_xscale("symlog", linthresh=10)
    ax.legend()
    fig.tight_layout()
    png_path = out / "per_position.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return csv_path, png_path


def run(args) -> int:
    from ..data import tokenize_cached, train_val_split
    from ..evaluation import per_position_loss
    from ..jsonsafe import dumps
    from ..training.checkpoint import load_model
    from ..training.distributed import parse_device

    cfg = build_config(EvalConfig, args, recipe=args.recipe)
    if not cfg.checkpoint:
        raise ValueError("no checkpoint given (pass --checkpoint DIR)")
    if not cfg.data:
        raise ValueError("no evaluation data given (pass --data SOURCE)")
    if not cfg.context_multiples or min(cfg.context_multiples) < 1:
        raise ValueError("--context-multiples must be positive integers")
    if cfg.batches < 1 or cfg.batch_size < 1:
        raise ValueError(f"--batches and --batch-size must be ≥ 1, got {cfg.batches} and {cfg.batch_size}")
    device = parse_device(cfg.device)
    model, tokenizer, train_cfg, ckpt = load_model(cfg.checkpoint, device)
    tokens = tokenize_cached(cfg.data, tokenizer)  # streamed
    if cfg.split != "all":
        train_tok, val_tok = train_val_split(tokens, train_cfg.get("val_fraction", 0.1))
        tokens = val_tok if cfg.split == "val" else train_tok
    block = model.config.block_size
    report: dict = {"checkpoint": str(ckpt), "model": model.config.model_type, "split": cfg.split}
    results, notes = {}, {}
    for mult in sorted(set(cfg.context_multiples)):
        ctx = block * mult
        if getattr(model.config, "positions", "") == "learned" and ctx > block:  # rotary / none run long
            notes[ctx] = f"skipped: the transformer has learned positions only up to block_size={block}"
            continue
        if len(tokens) < ctx + 1:
            notes[ctx] = f"skipped: the data has {len(tokens)} tokens, fewer than {ctx + 1}"
            continue
        results[ctx] = per_position_loss(model, tokens, ctx, cfg.batches, cfg.batch_size, seed=cfg.seed,
                                         device=device)
    if block not in results:
        raise ValueError(notes.get(block, f"context {block} was not evaluated"))
    report.update(results[block].to_dict())
    report["contexts"] = {str(c): r.to_dict() for c, r in results.items()}
    report["contexts"].update({str(c): {"context": c, "note": n} for c, n in notes.items()})
    out = Path(cfg.out) if cfg.out else ckpt.parent / "eval" if (ckpt.parent / "latest").exists() else ckpt / "eval"
    csv_path, png_path = write_curves(results, out, f"{report['model']} per-position loss ({cfg.split})")
    report["csv"], report["png"] = str(csv_path), str(png_path)
    print(dumps(report, indent=2))
    return 0
