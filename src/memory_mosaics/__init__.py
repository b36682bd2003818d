"""memory-mosaics: associative-memory networks (Zhang, Nolte, Sadhukhan, Chen, Bottou — ICLR 2025).

    from memory_mosaics import MosaicConfig, MemoryMosaic, TransformerConfig, Transformer
    model = MemoryMosaic(MosaicConfig.preset("tiny"))
    logits = model(idx)            # idx: LongTensor (B, T) -> (B, T, vocab_size)
"""

from .config import ConfigError, MosaicConfig, TransformerConfig, config_from_dict
from .models import MemoryMosaic, Transformer

__version__ = "0.1.0"


def build_model(config: MosaicConfig | TransformerConfig):
    """The model class that matches a config."""
    return MemoryMosaic(config) if isinstance(config, MosaicConfig) else Transformer(config)


__all__ = [
    "ConfigError", "MemoryMosaic", "MosaicConfig", "Transformer", "TransformerConfig",
    "build_model", "config_from_dict", "__version__",
]
