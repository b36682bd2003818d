"""`PretrainedConfig`s for both models. The library config's fields are stored as top-level keys of config.json,
taken generically from its dataclass fields (a field added to MosaicConfig / TransformerConfig flows through with
no change here); `to_library()` rebuilds the validated library config."""

from __future__ import annotations

import dataclasses

from transformers import PretrainedConfig

from ..config import MosaicConfig, TransformerConfig


def _library_fields(kwargs: dict, library_class) -> dict:
    """Pop the library config's fields from kwargs, defaults from the dataclass."""
    out = {}
    for f in dataclasses.fields(library_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = kwargs.pop(f.name, default)
    return out


class _LibraryConfig(PretrainedConfig):
    library_class = MosaicConfig
    attribute_map = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head"}

    def __init__(self, **kwargs):  # transformers 4 (5 replaces a subclass's __init__: __post_init__ below)
        super().__init__(**self._take_library_fields(kwargs))

    def __post_init__(self, **kwargs):  # transformers 5: its dataclass __init__ hands over the keys it lacks
        super().__post_init__(**self._take_library_fields(kwargs))

    def _take_library_fields(self, kwargs: dict) -> dict:
        """Set the library config's fields from kwargs (renamed fields of an older config.json upgraded, so they
        are neither kept nor written back); returns the other kwargs for PretrainedConfig."""
        kwargs = self.library_class._upgrade(kwargs)
        for name, value in _library_fields(kwargs, self.library_class).items():
            setattr(self, name, value)
        # The output layer *is* the input embedding (logits = h Eᵀ): the library holds one tensor, nothing to tie.
        kwargs.setdefault("tie_word_embeddings", False)
        return kwargs

    @classmethod
    def from_library(cls, config, **kwargs) -> _LibraryConfig:
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)}, **kwargs)

    def to_library(self):
        """The validated MosaicConfig / TransformerConfig."""
        return self.library_class(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self.library_class)})


class MemoryMosaicHFConfig(_LibraryConfig):
    """A Memory Mosaic (no position limit: `block_size` is only its training context)."""

    model_type = "memory_mosaic"
    library_class = MosaicConfig


class MosaicTransformerHFConfig(_LibraryConfig):
    """The GPT-2 baseline of memory-mosaics. With learned positions it takes at most `block_size` tokens; with
    rotary / no positions `block_size` is only its training context (max_position_embeddings still reports it, the
    conservative value for tools that size their windows by it)."""

    model_type = "memory_mosaic_transformer"
    library_class = TransformerConfig
    attribute_map = {**_LibraryConfig.attribute_map, "max_position_embeddings": "block_size",
                     "n_positions": "block_size"}
