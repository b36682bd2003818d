"""The decoding state as a transformers `Cache`.

A Memory Mosaic's state is not key/value pairs: per context memory it is the key extractor's leaky-average
state, the stored keys and values and the pending W_ψ x_{t-1} (its value is completed when x_t arrives); per
persistent memory, its query's leaky-average state. The library keeps that in `memory_mosaics.cache.ModelCache`
(with the padding mask of a left-padded prompt); this class carries one through `generate` and adds what
transformers asks of a cache (length, beam reordering). It cannot be cropped, so assisted decoding is refused
(`_is_stateful`). The transformer baseline uses the same class (its ModelCache holds keys and values).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from ..cache import GrowingBuffer, ModelCache


def _select(obj, idx: torch.Tensor):
    """obj with every batch-first tensor inside indexed by idx (beam search reordering)."""
    if isinstance(obj, torch.Tensor):
        return obj.index_select(0, idx.to(obj.device))
    if isinstance(obj, GrowingBuffer):
        obj._data = obj._data.index_select(0, idx.to(obj._data.device))
        return obj
    if isinstance(obj, list):
        return [_select(o, idx) for o in obj]
    if obj is None:
        return None
    for name, value in vars(obj).items():  # ContextMemoryCache, KVCache
        setattr(obj, name, _select(value, idx))
    return obj


class MemoryMosaicCache(Cache):
    is_compileable = False

    def __init__(self, native: ModelCache | None = None):
        super().__init__(layers=[])
        self.native = native  # None until the prompt has been prefilled

    def __repr__(self) -> str:
        return f"MemoryMosaicCache(length={self.get_seq_length()})"

    def __len__(self) -> int:
        return 0 if self.native is None else len(self.native.blocks)

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return 0 if self.native is None else self.native.length

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return -1  # grows without bound

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1

    @property
    def is_croppable(self) -> bool:
        return False

    def update(self, *args, **kwargs):
        raise NotImplementedError("a MemoryMosaicCache is filled by the model's own prefill/decode_step, not update()")

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.native is not None:
            self.native.blocks = _select(self.native.blocks, beam_idx)
            self.native.mask = _select(self.native.mask, beam_idx)
