"""`mosaic train`: train a Memory Mosaic or the transformer baseline on text.

    mosaic train --model mosaic --preset small --data shakespeare --tokenizer char --out runs/sh-mosaic
    mosaic train --recipe recipes/shakespeare-char.yaml --model transformer --out runs/sh-gpt
    mosaic train --out runs/sh-mosaic --resume --max-steps 4000        # continue (the saved config is reused)
    mosaic train --out runs/sh-mosaic --resume --max-steps 4000 --lr-decay-steps 4000  # ... and stretch the cosine
    torchrun --nproc_per_node 8 -m memory_mosaics.cli train --recipe recipes/paper-babistories.yaml --out runs/p
"""

from __future__ import annotations

from ..training.config import TrainConfig
from .typed import add_command, build_config


def add_parser(subparsers) -> None:
    add_command(subparsers, "train", TrainConfig, run, help="train a model on text", description=__doc__,
                make=make_config)


def make_config(given: dict) -> TrainConfig:
    """--resume: the checkpoint's config with the given fields applied (refused where they would change the
    run); otherwise defaults < recipe < flags."""
    from ..training import checkpoint as ckpt_io
    from ..training.config import merge_for_resume

    if not given.get("resume"):
        return build_config(TrainConfig, base=given)
    out = given.get("out")
    if not out:
        raise ValueError("--resume needs --out DIR (the run to continue)")
    if not ckpt_io.has_checkpoint(out):
        raise ValueError(f"nothing to resume: {out} has no checkpoint (drop --resume to start a new run)")
    ckpt, _ = ckpt_io.resumable(out)  # the trainer picks the same one and says so if it is not the newest
    return merge_for_resume(ckpt_io.read_json(ckpt, "train_config.json"), given)


def run(cfg: TrainConfig) -> int:
    from ..jsonsafe import dumps
    from ..training.trainer import train

    if not cfg.data:
        raise ValueError("no training data given (pass --data FILE, FOLDER, FILE.jsonl, shakespeare or tinystories)")
    summary = train(cfg)
    if summary:
        print(dumps(summary))
    return 0
