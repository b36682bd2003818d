"""Language models: the Memory Mosaic and its GPT-2 baseline, one interface."""

from .base import CausalLM
from .mosaic import MemoryMosaic, MosaicBlock
from .transformer import Transformer, TransformerBlock

__all__ = ["CausalLM", "MemoryMosaic", "MosaicBlock", "Transformer", "TransformerBlock"]
