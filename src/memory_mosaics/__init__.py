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


def load_checkpoint(path, device="cpu"):
    """(model, tokenizer) from a `mosaic train` checkpoint or run folder (its latest checkpoint), for native use:
    `model.generate(...)`, `tokenizer.encode/decode`. The model is in eval mode."""
    from .training.checkpoint import load_model

    model, tokenizer, _, _ = load_model(path, device)
    return model.eval(), tokenizer


# Register the Hugging Face models with AutoConfig / AutoModelForCausalLM once transformers is imported
# (nothing is imported here; see hf/__init__.py).
from .hf import install_import_hook as _install_hf_hook  # noqa: E402

_install_hf_hook()


__all__ = [
    "ConfigError", "MemoryMosaic", "MosaicConfig", "Transformer", "TransformerConfig",
    "build_model", "config_from_dict", "load_checkpoint", "__version__",
]
