"""Autoregressive sampling for both models.

With `use_cache=True` the prompt is run once in parallel (`model.prefill`) and each new token costs one
`model.decode_step` — O(context) work per token. `use_cache=False` re-runs the whole context every token (the
reference the cache is tested against). The Memory Mosaic has no positional encoding, so it keeps going past
its training context, as does a transformer with rotary / no positions; a learned-position transformer crops its
context to the last `block_size` tokens, as nanoGPT does (`model.max_context`: None when unbounded).
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


def stream(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
           use_cache: bool = True, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1) as soon as it is sampled (what `mosaic sample` prints as it goes)."""
    model.check_tokens(idx)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    was_training = model.training
    model.eval()
    limit = model.max_context  # None: unbounded (the Memory Mosaic)
    B, T0 = idx.shape
    out = idx.new_empty(B, T0 + max_new_tokens)  # preallocated: no concatenation per token
    out[:, :T0] = idx
    try:
        cache = None
        for t in range(T0, T0 + max_new_tokens):
            with torch.no_grad():
                context = out[:, :t] if limit is None else out[:, max(0, t - limit):t]
                if not use_cache:
                    logits = model(context)[:, -1]
                elif cache is None or (limit is not None and cache.length >= limit):
                    # (Re)start from the visible window: the first token, or a transformer at its position limit.
                    logits, cache = model.prefill(context)
                    logits = logits[:, -1]
                    total = T0 + max_new_tokens if limit is None else min(limit, T0 + max_new_tokens)
                    cache.reserve(total)  # preallocate every key/value buffer once
                else:
                    logits = model._decode(out[:, t - 1:t], cache)[:, -1]  # checked once, sampled in range since
                nxt = sample_next(logits, temperature, top_k, generator)
            out[:, t:t + 1] = nxt
            yield nxt
    finally:
        model.train(was_training)


def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             use_cache: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens)."""
    new = list(stream(model, idx, max_new_tokens, temperature, top_k, use_cache, generator))
    return torch.cat([idx, *new], dim=1)
