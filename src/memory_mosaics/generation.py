"""Autoregressive sampling for both models.

With `use_cache=True` the prompt is run once in parallel (`model.prefill`) and each new token costs one
`model.decode_step` — O(context) work per token. `use_cache=False` re-runs the whole context every token (the
reference the cache is tested against). The Memory Mosaic has no positional encoding, so it keeps going past
its training context; the transformer crops its context to the last `block_size` tokens, as nanoGPT does.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next token ids (B, 1). temperature 0 is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def _max_context(model) -> int | None:
    """The longest context the model can attend to, or None when unbounded (the Memory Mosaic)."""
    return model.config.block_size if hasattr(model, "wpe") else None


def stream(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
           use_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1) as soon as it is sampled (what `mosaic sample` prints as it goes)."""
    model.check_tokens(idx)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    was_training = model.training
    model.eval()
    limit = _max_context(model)
    try:
        cache = None
        for _ in range(max_new_tokens):
            with torch.no_grad():
                if not use_cache:
                    context = idx if limit is None else idx[:, -limit:]
                    logits = model(context)[:, -1]
                elif cache is None or (limit is not None and cache.length >= limit):
                    # (Re)start from the visible window: the first token, or a transformer at its position limit.
                    context = idx if limit is None else idx[:, -limit:]
                    logits, cache = model.prefill(context)
                    logits = logits[:, -1]
                else:
                    logits = model.decode_step(idx[:, -1:], cache)[:, -1]
                nxt = sample_next(logits, temperature, top_k, generator)
            idx = torch.cat([idx, nxt], dim=1)
            yield nxt
    finally:
        model.train(was_training)


def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             use_cache: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens)."""
    new = list(stream(model, idx, max_new_tokens, temperature, top_k, use_cache, generator))
    return torch.cat([idx, *new], dim=1)
