"""`mosaic sample`: continue a prompt with a trained checkpoint.

    mosaic sample --checkpoint runs/sh-mosaic --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional

from .typed import add_dataclass_args, build_config


@dataclass
class SampleConfig:
    checkpoint: str = field(default="", metadata={"help": "checkpoint folder, or a run folder (uses its latest)"})
    prompt: str = field(default="", metadata={"help": "text to continue (empty: start from end-of-text)"})
    max_new_tokens: int = field(default=200, metadata={"help": "tokens to generate"})
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature; 0 is greedy"})
    top_k: Optional[int] = field(default=None, metadata={"help": "sample among the k most likely tokens"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    num_samples: int = field(default=1, metadata={"help": "independent continuations"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate text from a checkpoint", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, SampleConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..training.checkpoint import load_model

    cfg = build_config(SampleConfig, args)
    if not cfg.checkpoint:
        raise ValueError("no checkpoint given (pass --checkpoint DIR)")
    if cfg.max_new_tokens < 0 or cfg.num_samples < 1:
        raise ValueError("--max-new-tokens must be ≥ 0 and --num-samples ≥ 1")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    model, tokenizer, _, _ = load_model(cfg.checkpoint, device)
    ids = tokenizer.encode(cfg.prompt) if cfg.prompt else [tokenizer.eot_id]
    if not ids:
        ids = [tokenizer.eot_id]
    idx = torch.tensor([ids] * cfg.num_samples, dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    out = model.generate(idx, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k, generator=gen)
    for i, row in enumerate(out.tolist()):
        if i:
            print("\n" + "-" * 40)
        new = row[len(ids):]
        print(cfg.prompt + tokenizer.decode(new))
    return 0
