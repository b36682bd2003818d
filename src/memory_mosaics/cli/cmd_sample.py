"""`mosaic sample`: continue a prompt with a trained checkpoint.

    mosaic sample --checkpoint runs/sh-mosaic --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config import ConfigError, at_least
from .typed import add_command


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
    add_command(subparsers, "sample", SampleConfig, run, help="generate text from a checkpoint", description=__doc__)


def run(cfg: SampleConfig) -> int:
    import math
    import sys

    import torch

    from ..generation import stream
    from ..training.checkpoint import load_model
    from ..training.distributed import parse_device

    if not cfg.checkpoint:
        raise ConfigError("no checkpoint given", key="checkpoint")
    at_least(cfg, 0, "max_new_tokens")
    at_least(cfg, 1, "num_samples", "top_k")
    if not (math.isfinite(cfg.temperature) and cfg.temperature >= 0):
        raise ConfigError(f"temperature must be a finite number ≥ 0, got {cfg.temperature}", key="temperature")
    device = parse_device(cfg.device)
    model, tokenizer, _, _ = load_model(cfg.checkpoint, device)
    ids = tokenizer.encode(cfg.prompt) if cfg.prompt else [tokenizer.eot_id]
    if not ids:
        ids = [tokenizer.eot_id]
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    out = sys.stdout
    for i in range(cfg.num_samples):  # one after another, each printed token by token as it is sampled
        if i:
            out.write("\n" + "-" * 40 + "\n")
        out.write(cfg.prompt)
        out.flush()
        pending = []  # tokens not printed yet: a character's bytes may span several byte-level BPE tokens
        for tok in stream(model, idx, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
                          generator=gen):
            pending.append(int(tok))
            text = tokenizer.decode(pending)
            if not text.endswith("\ufffd"):  # hold back a character whose bytes are not all sampled yet
                out.write(text)
                out.flush()
                pending = []
        out.write(tokenizer.decode(pending) + "\n")
        out.flush()
    return 0
