"""The one reparameterisation the layers share: a per-head scalar is stored divided by SPEED and used multiplied
by it, so Adam (whose steps are ~lr in the stored units) moves it SPEED times faster than a plain parameter.
Used for the key decay ρ, the bandwidth θ, and the value / persistent-memory scales η."""

from __future__ import annotations

SPEED = 10.0


def stored(value):
    """What to store for a wanted value (float or tensor)."""
    return value / SPEED


def actual(param):
    """The value a stored parameter stands for."""
    return SPEED * param
