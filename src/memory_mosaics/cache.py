"""Decoding caches: what each layer keeps between tokens so a new token costs O(context), not O(context²).

Memory Mosaic, per block:
- context memory: the leaky-average state k̄_{t-1} of its key extractor, the stored keys k_0..k_{t-1}, the
  completed values v_0..v_{t-2}, and the pending ṽ_{t-1} = W_ψ x_{t-1}: its value peeks at x_t, so it is
  completed (v_{t-1} = α·Norm((1-γ) ṽ_t + γ ṽ_{t-1})) when x_t arrives, just before the query at t reads it.
- persistent memory: only its query's leaky-average state.
Transformer, per block: the usual keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class GrowingBuffer:
    """A (B, H, n, D) tensor that grows along dim 2 with amortised O(1) appends (capacity doubles)."""

    def __init__(self, init: torch.Tensor, min_capacity: int = 64):
        B, H, n, D = init.shape
        self._data = init.new_empty(B, H, max(min_capacity, 2 * n), D)
        self._data[:, :, :n] = init
        self.length = n

    def append(self, x: torch.Tensor) -> None:
        """x: (B, H, m, D)."""
        m = x.shape[2]
        if self.length + m > self._data.shape[2]:
            bigger = self._data.new_empty(*self._data.shape[:2], 2 * (self.length + m), self._data.shape[3])
            bigger[:, :, : self.length] = self._data[:, :, : self.length]
            self._data = bigger
        self._data[:, :, self.length : self.length + m] = x
        self.length += m

    def view(self) -> torch.Tensor:
        return self._data[:, :, : self.length]

    def __len__(self) -> int:
        return self.length


@dataclass
class ContextMemoryCache:
    key_state: torch.Tensor  # k̄_{t-1}: (B, H, 1, d_h)
    keys: GrowingBuffer  # k_0 .. k_{t-1}
    values: GrowingBuffer  # v_0 .. v_{t-2} (complete)
    pending: torch.Tensor  # ṽ_{t-1}: (B, H, 1, d_h), waiting for x_t


@dataclass
class KVCache:
    keys: GrowingBuffer
    values: GrowingBuffer


@dataclass
class ModelCache:
    """One entry per block; `length` is the number of tokens consumed so far; `mask` (B, length), when the prompt was
    padded: False at the padding, which decoding never reads."""

    blocks: list = field(default_factory=list)
    length: int = 0
    mask: torch.Tensor | None = None
