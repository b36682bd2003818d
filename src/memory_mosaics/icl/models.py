"""The two models compared on every ICL task, built from the shared presets: the same width, heads and depth, and
blocks of the same size; the transformer also has a learned position table (1000 × 128 in `icll`), so at 2 blocks
it has 524,416 parameters to the Memory Mosaic's 396,528 (396,416 without the table)."""

from __future__ import annotations

from ..config import MosaicConfig, TransformerConfig
from ..models import MemoryMosaic, Transformer

MODELS = ("mosaic", "transformer")
NO_DROPOUT_MOSAIC = dict(dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0)
NO_DROPOUT_TRANSFORMER = dict(dropout=0.0)


def build_icl_model(kind: str, *, n_layer: int, vocab_size: int = 20, block_size: int = 1000, dropout: bool = True):
    """`icll` preset (d 128, 8 heads; the MM's P-mem of 448 slots matches the GPT block's parameters).
    dropout=False zeroes every dropout of both models: on CPU any attention-probability dropout forces PyTorch's
    unfused attention, a 3–5× slower step (measured in docs/icl.md)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    common = dict(n_layer=n_layer, vocab_size=vocab_size, block_size=block_size)
    if kind == "mosaic":
        return MemoryMosaic(MosaicConfig.preset("icll", **common, **({} if dropout else NO_DROPOUT_MOSAIC)))
    return Transformer(TransformerConfig.preset("icll", **common, **({} if dropout else NO_DROPOUT_TRANSFORMER)))
