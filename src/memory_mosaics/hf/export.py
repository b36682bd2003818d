"""`mosaic export`: a training checkpoint -> a Hugging Face model folder.

    OUT/config.json                model type + every library config field, auto_map for trust_remote_code
    OUT/model.safetensors          the library's weights under `model.`
    OUT/generation_config.json     end-of-text as BOS/EOS/pad
    OUT/tokenizer.json, tokenizer_config.json, special_tokens_map.json
    OUT/configuration_memory_mosaics.py, modeling_memory_mosaics.py
                                   two-line shims importing the installed package, so processes that never import
                                   memory_mosaics (the `lm_eval` CLI) load it with trust_remote_code=True

Written into a temporary folder beside OUT and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path

# How far lm-eval & co. may feed a Memory Mosaic: it has no position limit; its loss was measured flat up to 4x
# the training context (README), so 4 x block_size is the tokenizer's model_max_length.
MOSAIC_CONTEXT_FACTOR = 4

SHIM = '''"""Loads {cls} from the installed memory-mosaics package (pip install memory-mosaics)."""
from memory_mosaics.hf.{module} import {cls}  # noqa: F401
'''


def export_checkpoint(checkpoint, out, overwrite: bool = False, tokenizer: bool = True) -> Path:
    """Export a checkpoint (or a run folder's latest) to the Hugging Face folder `out`; returns `out`."""
    from transformers import GenerationConfig

    from ..config import MosaicConfig
    from ..training.checkpoint import atomic_folder, load_model
    from .configuration import MemoryMosaicHFConfig, MosaicTransformerHFConfig
    from .modeling import MemoryMosaicForCausalLM, MosaicTransformerForCausalLM
    from .tokenizer import export_tokenizer, tokenizers_object

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    native, tok, _, _ = load_model(checkpoint, "cpu")
    if tokenizer:
        tokenizers_object(tok)  # an unsupported tokenizer fails here, before anything is written
    mosaic = isinstance(native.config, MosaicConfig)
    config_cls, model_cls = ((MemoryMosaicHFConfig, MemoryMosaicForCausalLM) if mosaic
                             else (MosaicTransformerHFConfig, MosaicTransformerForCausalLM))
    eot = tok.eot_id
    config = config_cls.from_library(native.config, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    config.auto_map = {"AutoConfig": f"configuration_memory_mosaics.{config_cls.__name__}",
                       "AutoModelForCausalLM": f"modeling_memory_mosaics.{model_cls.__name__}"}
    model = model_cls(config)
    model.model.load_state_dict(native.state_dict(), strict=True)
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    block = native.config.block_size
    with atomic_folder(out) as tmp:
        model.save_pretrained(str(tmp))
        if tokenizer:
            # A model without a position table (Memory Mosaic, rotary / no-position transformer) reads past its
            # training context: its tokenizer allows a multiple of it; a learned table allows block_size.
            export_tokenizer(tok, tmp, MOSAIC_CONTEXT_FACTOR * block if native.max_context is None else block)
        (tmp / "configuration_memory_mosaics.py").write_text(SHIM.format(module="configuration", cls=config_cls.__name__))
        (tmp / "modeling_memory_mosaics.py").write_text(SHIM.format(module="modeling", cls=model_cls.__name__))
    return out
