"""`PreTrainedModel` + `GenerationMixin` causal LMs wrapping the library's models (no second implementation).

    model = AutoModelForCausalLM.from_pretrained(OUT)       # after `import memory_mosaics`
    out = model.generate(**tok(["Once", "Once upon a"], return_tensors="pt", padding=True), max_new_tokens=20)

The wrapped model is `self.model` (state-dict keys `model.<library key>`). `attention_mask` with left padding is
exact: padding never enters a memory, a leaky-average state or a read (ops/padding.py). Forward paths:
- with a gradient (training, `labels`): the library's `forward`, fast or reference as configured;
- without one and `use_cache` (generate, inference): `prefill`, then one `decode_step` per new token, the state
  carried in a `MemoryMosaicCache`.
Logits are returned for every position; `position_ids` are derived from the mask, not read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .. import build_model
from .cache import MemoryMosaicCache
from .configuration import MemoryMosaicHFConfig, MosaicTransformerHFConfig

# transformers 5.x renamed `past_key_values` to `cache` in generate, model inputs and outputs.
CACHE_KEY = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class _LibraryCausalLM(PreTrainedModel, GenerationMixin):
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _is_stateful = True  # the state cannot be cropped back: no assisted decoding
    _supports_cache_class = True
    _no_split_modules = ["MosaicBlock", "TransformerBlock"]

    def __init__(self, config):
        super().__init__(config)
        self.model = build_model(config.to_library())
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the model makes its own MemoryMosaicCache on the first forward

    def _init_weights(self, module) -> None:
        """The library initialises its modules when it builds them (from_pretrained then loads every tensor)."""

    def get_input_embeddings(self):
        return self.model.wte

    def set_input_embeddings(self, value):
        self.model.wte = value

    def get_output_embeddings(self):
        return None  # logits use the input embedding itself (see the library's `logits`)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                past_key_values: MemoryMosaicCache | None = None, use_cache: bool | None = None,
                labels: torch.LongTensor | None = None, inputs_embeds: torch.Tensor | None = None,
                logits_to_keep: int = 0, return_dict: bool | None = None, **kwargs) -> CausalLMOutputWithPast:
        if inputs_embeds is not None or input_ids is None:
            raise ValueError(f"{type(self).__name__} takes input_ids (inputs_embeds are not supported)")
        cache = kwargs.pop("cache", None)
        cache = past_key_values if cache is None else cache
        if cache is not None and not isinstance(cache, MemoryMosaicCache):
            if cache.get_seq_length() > 0:
                raise ValueError(f"{type(self).__name__} keeps its state in a MemoryMosaicCache, got {type(cache).__name__}")
            cache = None  # an empty cache of another kind: replaced by ours
        use_cache = getattr(self.config, "use_cache", True) if use_cache is None else use_cache  # not kept by 5.x
        if cache is not None and cache.native is not None:
            logits = self._decode(input_ids, attention_mask, cache)
        elif use_cache and not torch.is_grad_enabled():
            logits, native = self.model.prefill(input_ids, attention_mask)
            cache = cache if cache is not None else MemoryMosaicCache()
            cache.native = native
        else:
            logits, cache = self.model(input_ids, attention_mask), None
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten().to(logits.device),
                                   ignore_index=-100)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{CACHE_KEY: cache})

    def _decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                cache: MemoryMosaicCache) -> torch.Tensor:
        """New tokens (B, n) after the cached ones, one decode_step each -> logits (B, n, V)."""
        n = input_ids.shape[1]
        if attention_mask is not None and not bool(attention_mask[:, -n:].bool().all()):
            raise ValueError("padding is supported in the prompt only (left padding): new tokens must have "
                             "attention_mask 1")
        steps = [self.model.decode_step(input_ids[:, j:j + 1], cache.native) for j in range(n)]
        return torch.cat(steps, dim=1)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, attention_mask=None, use_cache=True,
                                      **kwargs) -> dict:
        """Only the tokens the cache has not consumed yet; the cache under the name this transformers uses."""
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if isinstance(cache, MemoryMosaicCache) and cache.get_seq_length() > 0:
            input_ids = input_ids[:, cache.get_seq_length():]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": use_cache, CACHE_KEY: cache}


class MemoryMosaicForCausalLM(_LibraryCausalLM):
    config_class = MemoryMosaicHFConfig


class MosaicTransformerForCausalLM(_LibraryCausalLM):
    config_class = MosaicTransformerHFConfig
