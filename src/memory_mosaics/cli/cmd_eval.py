"""`mosaic eval`: loss, perplexity and the per-position loss curve of a checkpoint on some text.

    mosaic eval --checkpoint runs/sh-mosaic --data shakespeare
    mosaic eval --checkpoint runs/sh-gpt --data shakespeare --context-multiples 1 2 4 --out runs/sh-gpt/eval

Prints JSON (loss, perplexity, tokens at the training context, plus one entry per longer context) and writes
per_position.csv (position, loss at each evaluated context) and per_position.png. The Memory Mosaic has no
positional encoding, so it is scored past its training context, as is a transformer with rotary / no positions; a
learned-position transformer cannot go past block_size (`model.max_context`), and the JSON says so for those
contexts instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..config import ConfigError, at_least
from .typed import add_command


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
    add_command(subparsers, "eval", EvalConfig, run, help="loss, perplexity and per-position loss of a checkpoint",
                description=__doc__)


def run(cfg: EvalConfig) -> int:
    from ..data import tokenize_cached, train_val_split
    from ..evaluation import per_position_loss, write_per_position
    from ..jsonsafe import dumps
    from ..training.checkpoint import load_model
    from ..training.distributed import parse_device

    if not cfg.checkpoint:
        raise ConfigError("no checkpoint given", key="checkpoint")
    if not cfg.data:
        raise ConfigError("no evaluation data given", key="data")
    if not cfg.context_multiples or min(cfg.context_multiples) < 1:
        raise ConfigError(f"context_multiples must be positive integers, got {cfg.context_multiples}",
                          key="context_multiples")
    at_least(cfg, 1, "batches", "batch_size")
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
        if model.max_context is not None and ctx > model.max_context:  # rotary / none / mosaic: unbounded
            notes[ctx] = f"skipped: the model reads at most block_size={model.max_context} positions (learned positions)"
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
    csv_path, png_path = write_per_position(results, out, f"{report['model']} per-position loss ({cfg.split})")
    report["csv"], report["png"] = str(csv_path), str(png_path)
    print(dumps(report, indent=2))
    return 0
