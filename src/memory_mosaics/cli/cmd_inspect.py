"""`mosaic inspect`: an HTML report of what a trained Memory Mosaic retrieves, and its learned time scales."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .typed import add_command


@dataclass
class InspectConfig:
    checkpoint: str = field(default="", metadata={
        "help": "a `mosaic train` run/checkpoint folder, or a `mosaic moons` run folder"})
    text: Optional[str] = field(default=None, metadata={"help": "input text to inspect (language models)"})
    data: Optional[str] = field(default=None, metadata={"help": "optional data source for the per-position loss curve"})
    max_tokens: int = field(default=48, metadata={"help": "inspect at most this many tokens of --text"})
    out: str = field(default="", metadata={"help": "output folder (report.html, PNGs, report.json)"})


def add_parser(subparsers) -> None:
    add_command(subparsers, "inspect", InspectConfig, run, description=__doc__,
                help="HTML report: retrieval maps, per-head time scales/bandwidths, slots, loss")


def run(args: InspectConfig) -> int:
    from ..moons.experiment import is_moons_run
    from . import UserError

    if not args.checkpoint or not args.out:
        raise UserError("--checkpoint DIR and --out DIR are required")
    ckpt, out = Path(args.checkpoint), Path(args.out)
    if not ckpt.exists():
        raise UserError(f"checkpoint {ckpt} does not exist")
    # The output folder is created only once the input is known to be good (the report writes it).
    if is_moons_run(ckpt):
        from ..analysis.inspect_run import inspect_moons

        path = inspect_moons(ckpt, out)
    else:
        from ..analysis.inspect_run import inspect_language_model
        from ..training.checkpoint import load_model, resolve

        resolve(ckpt)  # a checkpoint problem is named before a missing flag
        if not args.text:
            raise UserError("--text is required for a language-model checkpoint")
        model, tokenizer, _, _ = load_model(ckpt)
        tokens = None
        if args.data:
            from ..data.sources import load_documents
            from ..data.tokenizer import encode_documents

            tokens = encode_documents(tokenizer, load_documents(args.data))
        path = inspect_language_model(model, tokenizer, args.text, out, tokens, args.max_tokens, name=str(ckpt))
    print(f"wrote {path}")
    return 0
