"""`mosaic inspect`: an HTML report of what a trained Memory Mosaic retrieves, and its learned time scales."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="HTML report: retrieval maps, per-head time scales/bandwidths, slots, loss",
                       description=__doc__)
    p.add_argument("--checkpoint", required=True,
                   help="a `mosaic train` run/checkpoint folder, or a `mosaic moons` run folder")
    p.add_argument("--text", default=None, help="input text to inspect (language models)")
    p.add_argument("--data", default=None, help="optional data source for the per-position loss curve")
    p.add_argument("--max-tokens", type=int, default=48, help="inspect at most this many tokens of --text")
    p.add_argument("--out", required=True, help="output folder (report.html, PNGs, report.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import UserError

    from ..moons.experiment import is_moons_run

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
