"""nn.Module layers: the memories of a Memory Mosaic and their extractors."""

from .context_memory import ContextMemory
from .feedforward import MLP, SwiGLU
from .key_extractor import KeyExtractor
from .persistent_memory import PersistentMemory
from .value_extractor import ValueExtractor

__all__ = ["ContextMemory", "KeyExtractor", "MLP", "PersistentMemory", "SwiGLU", "ValueExtractor"]
