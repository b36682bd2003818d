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
                make=lambda given: (build_config(TrainConfig, base=given), given))


def run(cfg_and_given: tuple[TrainConfig, dict]) -> int:
    """--resume is decided in the trainer: the checkpoint's config with the values given here applied."""
    from ..jsonsafe import dumps
    from ..training.trainer import train

    cfg, given = cfg_and_given
    summary = train(cfg, given=given)
    if summary:
        print(dumps(summary))
    return 0
