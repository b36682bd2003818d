"""`mosaic moons`: the three-moons predictive-disentanglement experiment (1 head vs 3 heads, 54 parameters).

Train the 54-parameter moons memory and measure generation error vs context length. Writes summary.json and PNG
figures to --out.

    mosaic moons --heads 3 --seed 100 --out runs/moons-3
    mosaic moons --compare --seeds 100 101 102 --out runs/moons
"""

from __future__ import annotations

from ..moons.config import MoonsConfig
from .typed import add_command


def add_parser(subparsers) -> None:
    add_command(subparsers, "moons", MoonsConfig, run, description=__doc__, one_of=("heads", "compare"),
                help="three-moons experiment: 1 head vs 3 heads (predictive disentanglement)")


def run(cfg: MoonsConfig) -> int:
    from ..moons.experiment import run_moons

    run_moons(cfg)
    return 0
