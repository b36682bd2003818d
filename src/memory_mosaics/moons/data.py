"""Three-moons data (the reference code calls them "planets").

Three moons circle the observer with periods p_1, p_2, p_3 (time units). Step n (absolute index) is observed as

    x_n = (sin φ_1, cos φ_1, sin φ_2, cos φ_2, sin φ_3, cos φ_3),   φ_i = 2π·n·Δ/p_i + 0.3

with Δ = 0.0225 (so a joint period of 6 is 266.7 steps). A sample is an 800-step window starting at a uniform
integer in [0, 8399); its target is the same window shifted by one step.
"""

from __future__ import annotations

import math
from functools import reduce
from itertools import combinations

import numpy as np
import torch

PERIOD_CHOICES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
# The 9 triples with the smallest joint period; five tie at 6, so the reference's sort order is hard-coded.
TRAIN_TRIPLES = (
    (0.5, 1.0, 2.0), (0.5, 1.0, 1.5), (0.5, 1.0, 3.0), (0.5, 1.5, 3.0),
    (1.0, 1.5, 3.0), (0.5, 1.0, 2.5), (1.0, 1.5, 2.0), (0.5, 1.5, 2.0),
)
VAL_TRIPLE = (1.0, 2.0, 3.0)
TRAIN_PANEL_TRIPLE = (0.5, 1.0, 2.5)  # the training triple shown in the paper's left panel

BLOCK = 800
TOTAL_STEPS = 10_000
MAX_JOINT_PERIOD = 6.0
MIN_PERIODS_IN_BLOCK = 3
STEPS_PER_UNIT = BLOCK / MAX_JOINT_PERIOD / MIN_PERIODS_IN_BLOCK  # u = 44.44 steps per time unit
DELTA = 1.0 / STEPS_PER_UNIT  # 0.0225
PHASE = 0.3
MAX_START = TOTAL_STEPS - 2 * BLOCK - 1  # starts are uniform on [0, 8399)


def lcm_float(a: float, b: float, precision: int = 1) -> float:
    """LCM of two decimals at `precision` digits (the reference's `lcm_float`)."""
    s = 10 ** precision
    return math.lcm(int(round(a * s)), int(round(b * s))) / s


def joint_period(triple) -> float:
    return reduce(lcm_float, triple)


def all_triples():
    """All 35 triples with their joint periods."""
    return [(t, joint_period(t)) for t in combinations(PERIOD_CHOICES, 3)]


def to_steps(period: float) -> float:
    return period / DELTA


def check_triple(triple) -> tuple:
    triple = tuple(float(p) for p in triple)
    if len(triple) != 3 or any(p <= 0 for p in triple):
        raise ValueError(f"a moon triple needs 3 positive periods, got {triple}")
    return triple


def observe(triple, starts: np.ndarray, length: int, observer: str = "sun") -> torch.Tensor:
    """(len(starts), length, 6) float32 observations of steps start .. start+length-1.

    observer="sun": raw positions; "planet": the last moon's position is subtracted from the others
    (the reference's non-sun option)."""
    if observer not in ("sun", "planet"):
        raise ValueError(f"observer must be 'sun' or 'planet', got {observer!r}")
    triple = check_triple(triple)
    n = np.asarray(starts, dtype=np.float64)[:, None] + np.arange(length)[None, :]  # (N, L) absolute steps
    t = n * DELTA
    phases = np.stack([2 * np.pi * t / p + PHASE for p in triple], axis=-1)  # (N, L, 3)
    sin, cos = np.sin(phases), np.cos(phases)
    if observer == "planet":
        sin[..., :-1] -= sin[..., -1:]
        cos[..., :-1] -= cos[..., -1:]
    x = np.stack([sin, cos], axis=-1).reshape(*n.shape, 6)  # (sin1, cos1, sin2, cos2, sin3, cos3)
    return torch.from_numpy(x.astype(np.float32))


def random_starts(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, MAX_START, size=n)


def triple_windows(triple, n: int, rng: np.random.Generator, block: int = BLOCK, observer: str = "sun"):
    """n random windows of one triple: x (n, block, 6) and target y = x shifted by one step."""
    xy = observe(triple, random_starts(rng, n), block + 1, observer)
    return xy[:, :-1], xy[:, 1:]


def train_batch(rng: np.random.Generator, batch: int = 64, block: int = BLOCK, triples=TRAIN_TRIPLES,
                observer: str = "sun"):
    """A training batch: each element draws a triple uniformly, then a window. x, y: (batch, block, 6)."""
    which = rng.integers(0, len(triples), size=batch)
    starts = random_starts(rng, batch)
    xs = [observe(triples[w], starts[i:i + 1], block + 1, observer) for i, w in enumerate(which)]
    xy = torch.cat(xs)
    return xy[:, :-1], xy[:, 1:]
