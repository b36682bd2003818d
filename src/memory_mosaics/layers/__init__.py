"""nn.Module layers: the memories of a Memory Mosaic and their extractors."""

from ..config import IMPLS, ConfigError
from .context_memory import ContextMemory
from .feedforward import MLP, SwiGLU
from .gated_key_extractor import GatedKeyExtractor
from .key_extractor import KeyExtractor
from .persistent_memory import PersistentMemory
from .three_level_memory import WindowedMemory
from .value_extractor import ValueExtractor

# The layers with a fast path and a reference path (`impl`); the rest have one implementation.
SWITCHABLE = (ContextMemory, GatedKeyExtractor, KeyExtractor, PersistentMemory, ValueExtractor, WindowedMemory)


def set_impl(module, impl: str):
    """Switch every switchable layer in `module` (itself included) to "fast" or "reference"; returns module."""
    if impl not in IMPLS:
        raise ConfigError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
    for m in module.modules():
        if isinstance(m, SWITCHABLE):
            m.impl = impl
    return module


__all__ = ["ContextMemory", "KeyExtractor", "MLP", "PersistentMemory", "SwiGLU", "ValueExtractor", "set_impl"]
