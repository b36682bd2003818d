"""Three-moons experiment (predictive disentanglement): data, the 54-parameter memory, training, evaluation.

    from memory_mosaics.moons import MoonsConfig, run_moons
    summary = run_moons(MoonsConfig(heads=3, seed=100, out="runs/moons-3"))     # or compare=True

`mosaic moons --heads {1,3} --out DIR` / `mosaic moons --compare --out DIR`; see docs/moons.md."""

from .config import MoonsConfig
from .data import TRAIN_PANEL_TRIPLE, TRAIN_TRIPLES, VAL_TRIPLE, joint_period, to_steps, train_batch, triple_windows
from .evaluate import evaluate_triple, generation_errors, stays_below
from .experiment import run_moons
from .model import ComplexLinear, MoonsMemory
from .optim import MLXAdamW, linear_decay
from .train import clipped_loss, train

__all__ = [
    "MoonsConfig", "run_moons",
    "TRAIN_PANEL_TRIPLE", "TRAIN_TRIPLES", "VAL_TRIPLE", "joint_period", "to_steps", "train_batch", "triple_windows",
    "evaluate_triple", "generation_errors", "stays_below", "ComplexLinear", "MoonsMemory", "MLXAdamW",
    "linear_decay", "clipped_loss", "train",
]
