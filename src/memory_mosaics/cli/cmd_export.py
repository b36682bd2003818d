"""`mosaic export`: write a checkpoint as a Hugging Face model folder (config.json, model.safetensors,
generation_config.json, tokenizer files), loadable with AutoModelForCausalLM / AutoTokenizer / pipeline and
lm-evaluation-harness (see docs/huggingface.md).

    mosaic export --checkpoint runs/sh-mosaic --hf runs/sh-mosaic-hf
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .typed import add_command


@dataclass
class ExportConfig:
    checkpoint: str = field(default="", metadata={"help": "checkpoint folder, or a run folder (uses its latest)"})
    hf: str = field(default="", metadata={"help": "output folder (Hugging Face format)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output folder"})
    tokenizer: bool = field(default=True, metadata={"help": "write the tokenizer files (false: the model only)"})


def add_parser(subparsers) -> None:
    add_command(subparsers, "export", ExportConfig, run, help="export a checkpoint to Hugging Face format",
                description=__doc__)


def run(cfg: ExportConfig) -> int:
    if not cfg.checkpoint or not cfg.hf:
        raise ValueError("pass --checkpoint DIR and --hf OUT")
    if importlib.util.find_spec("transformers") is None:
        raise ValueError("mosaic export needs transformers: pip install 'memory-mosaics[hf]'")
    from ..hf.export import export_checkpoint

    out = export_checkpoint(cfg.checkpoint, cfg.hf, overwrite=cfg.overwrite, tokenizer=cfg.tokenizer)
    print(f"exported {cfg.checkpoint} -> {out}")
    return 0
