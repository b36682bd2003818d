"""`mosaic export`: write a checkpoint as a Hugging Face model folder (config.json, model.safetensors,
generation_config.json, tokenizer files), loadable with AutoModelForCausalLM / AutoTokenizer / pipeline and
lm-evaluation-harness (see docs/huggingface.md).

    mosaic export --checkpoint runs/sh-mosaic --hf runs/sh-mosaic-hf
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass, field

from .typed import add_dataclass_args, build_config


@dataclass
class ExportConfig:
    checkpoint: str = field(default="", metadata={"help": "checkpoint folder, or a run folder (uses its latest)"})
    hf: str = field(default="", metadata={"help": "output folder (Hugging Face format)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output folder"})
    tokenizer: bool = field(default=True, metadata={"help": "write the tokenizer files (false: the model only)"})


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint to Hugging Face format", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, ExportConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = build_config(ExportConfig, args)
    if not cfg.checkpoint or not cfg.hf:
        raise ValueError("pass --checkpoint DIR and --hf OUT")
    if importlib.util.find_spec("transformers") is None:
        raise ValueError("mosaic export needs transformers: pip install 'memory-mosaics[hf]'")
    from ..hf.export import export_checkpoint

    out = export_checkpoint(cfg.checkpoint, cfg.hf, overwrite=cfg.overwrite, tokenizer=cfg.tokenizer)
    print(f"exported {cfg.checkpoint} -> {out}")
    return 0
