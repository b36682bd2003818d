"""Decoding caches: what each layer keeps between tokens so a new token costs O(context), not O(context²).

Memory Mosaic, per block:
- context memory: the leaky-average state k̄_{t-1} of its key extractor, the stored keys k_0..k_{t-1}, the
  completed values v_0..v_{t-2}, and the pending ṽ_{t-1} = W_ψ x_{t-1}: its value peeks at x_t, so it is
  completed (v_{t-1} = α·Norm((1-γ) ṽ_t + γ ṽ_{t-1})) when x_t arrives, just before the query at t reads it.
- persistent memory: only its query's leaky-average state.
Transformer, per block: the usual keys and values.

Both Memory Mosaic caches also hold `DecodeConstants`: what a step needs from the parameters (the concatenated
projection weight, λ_h, the scales, γ_h, the α-scaled value bank), computed once at prefill — once per `generate`
call — rather than once per token. They are a snapshot: a cache must not outlive a parameter update.
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
            self._grow(2 * (self.length + m))
        self._data[:, :, self.length : self.length + m] = x
        self.length += m

    def reserve(self, capacity: int) -> None:
        """Grow the storage to hold `capacity` positions now, so later appends never reallocate."""
        if capacity > self._data.shape[2]:
            self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        bigger = self._data.new_empty(*self._data.shape[:2], capacity, self._data.shape[3])
        bigger[:, :, : self.length] = self._data[:, :, : self.length]
        self._data = bigger

    def view(self) -> torch.Tensor:
        return self._data[:, :, : self.length]

    def __len__(self) -> int:
        return self.length


@dataclass
class DecodeConstants:
    """Per-layer values derived from the parameters, for decoding steps (see the module docstring)."""

    weight: torch.Tensor  # the input projection(s): (2d, d) [W_φ; W_ψ] for a context memory, (d, d) W_φ for a P-mem
    key_decay: torch.Tensor | None  # λ_h viewed (H, 1, 1); None when the leaky average is off
    key_scale: torch.Tensor  # (H,) the key / query scale
    gamma: torch.Tensor | None = None  # context memory: γ_h viewed (H, 1, 1); None when peek is off
    value_scale: torch.Tensor | None = None  # context memory: α_h (H,)
    bank_k: torch.Tensor | None = None  # persistent memory: M_k (1, H, P, d_h)
    bank_v: torch.Tensor | None = None  # persistent memory: α·M_v (1, H, P, d_h)


@dataclass
class ContextMemoryCache:
    key_state: torch.Tensor  # k̄_{t-1}: (B, H, 1, d_h)
    keys: GrowingBuffer  # k_0 .. k_{t-1}
    values: GrowingBuffer  # v_0 .. v_{t-2} (complete)
    pending: torch.Tensor  # ṽ_{t-1}: (B, H, 1, d_h), waiting for x_t
    consts: DecodeConstants | None = None  # v1's ContextMemory (set by its prefill); None in v2's memories


@dataclass
class PersistentMemoryCache:
    state: torch.Tensor  # the query's k̄_{t-1}: (B, H, 1, d_h)
    consts: DecodeConstants


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

    def reserve(self, total_length: int) -> None:
        """Preallocate every growing buffer for `total_length` positions (generate knows it up front)."""
        for buf in self.buffers():
            buf.reserve(total_length)

    def buffers(self) -> list[GrowingBuffer]:
        """Every growing buffer of every layer cache (v1 blocks hold layer caches; v2 blocks, lists of them)."""
        found = []

        def walk(obj) -> None:
            if isinstance(obj, GrowingBuffer):
                found.append(obj)
            elif isinstance(obj, (list, tuple)):
                for item in obj:
                    walk(item)
            elif hasattr(obj, "__dict__") and not isinstance(obj, torch.Tensor):
                for value in vars(obj).values():
                    walk(value)

        walk(self.blocks)
        return found
