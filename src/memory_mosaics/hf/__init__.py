"""Hugging Face transformers integration: `AutoConfig` / `AutoModelForCausalLM` models for both architectures,
the decoding state as a transformers cache, Hub-format export (`mosaic export`) and lm-evaluation-harness.

Nothing here imports transformers until it is used: `import memory_mosaics` only installs a hook that registers
the two model types with the Auto classes the moment transformers itself is imported (or at once, if it already
is). The core library never needs transformers.

    import memory_mosaics                                   # registers (lazily)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained("runs/sh-hf")
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings

# Supported transformers releases (tested: 4.57.x in a throwaway venv, 5.x in CI; see docs/huggingface.md).
TRANSFORMERS_REQUIREMENT = "transformers>=4.57,<6"

_LAZY = {
    "MemoryMosaicHFConfig": "configuration", "MosaicTransformerHFConfig": "configuration",
    "MemoryMosaicForCausalLM": "modeling", "MosaicTransformerForCausalLM": "modeling",
    "MemoryMosaicCache": "cache", "export_checkpoint": "export", "export_tokenizer": "tokenizer",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> None:
    """Register both model types with AutoConfig and AutoModelForCausalLM (imports transformers)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from .configuration import MemoryMosaicHFConfig, MosaicTransformerHFConfig
    from .modeling import MemoryMosaicForCausalLM, MosaicTransformerForCausalLM

    for config, model in ((MemoryMosaicHFConfig, MemoryMosaicForCausalLM),
                          (MosaicTransformerHFConfig, MosaicTransformerForCausalLM)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModelForCausalLM.register(config, model, exist_ok=True)


def _register_quietly() -> None:
    try:
        register()
    except Exception as err:  # an unsupported transformers must not break the user's own import of it
        warnings.warn(f"memory_mosaics could not register its models with transformers ({type(err).__name__}: "
                      f"{err}); supported: {TRANSFORMERS_REQUIREMENT}", stacklevel=3)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `transformers` is first imported, it wraps that module's loader so that
    `register()` runs right after transformers has finished importing."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)  # once; and so the lookup below does not come back here
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def exec_then_register(module):
                exec_module(module)
                _register_quietly()

            spec.loader.exec_module = exec_then_register
        return spec


def install_import_hook() -> None:
    """Called by `import memory_mosaics`: register now if transformers is loaded, else when it is imported."""
    if "transformers" in sys.modules:
        if sys.modules["transformers"] is not None:  # None: deliberately blocked
            _register_quietly()
    elif importlib.util.find_spec("transformers") is not None and \
            not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
