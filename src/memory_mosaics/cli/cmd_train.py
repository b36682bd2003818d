"""`mosaic train`: train a Memory Mosaic or the transformer baseline on text.

    mosaic train --model mosaic --preset small --data shakespeare --tokenizer char --out runs/sh-mosaic
    mosaic train --recipe recipes/shakespeare-char.yaml --model transformer --out runs/sh-gpt
    mosaic train --out runs/sh-mosaic --resume --max-steps 4000        # continue (the saved config is reused)
    mosaic train --out runs/sh-mosaic --resume --max-steps 4000 --lr-decay-steps 4000  # ... and stretch the cosine
    torchrun --nproc_per_node 8 -m memory_mosaics.cli train --recipe recipes/paper-babistories.yaml --out runs/p
"""

from __future__ import annotations

from ..jsonsafe import dumps
from .typed import add_dataclass_args, build_config, given_values, load_recipe


def add_parser(subparsers) -> None:
    from ..training.config import TrainConfig

    p = subparsers.add_parser("train", help="train a model on text", description=__doc__,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="YAML file of config values (command-line flags override it)")
    add_dataclass_args(p, TrainConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training import checkpoint as ckpt_io
    from ..training.config import TrainConfig, merge_for_resume
    from ..training.trainer import train

    given = load_recipe(args.recipe, TrainConfig) if args.recipe else {}
    given.update(given_values(args, TrainConfig))
    if given.get("resume"):
        out = given.get("out")
        if not out:
            raise ValueError("--resume needs --out DIR (the run to continue)")
        if not ckpt_io.has_checkpoint(out):
            raise ValueError(f"nothing to resume: {out} has no checkpoint (drop --resume to start a new run)")
        ckpt, _ = ckpt_io.resumable(out)  # the trainer picks the same one and says so if it is not the newest
        cfg = merge_for_resume(ckpt_io.read_json(ckpt, "train_config.json"), given)
    else:
        cfg = build_config(TrainConfig, base=given)
    if not cfg.data:
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    summary = train(cfg)
    if summary:
        print(dumps(summary))
    return 0
