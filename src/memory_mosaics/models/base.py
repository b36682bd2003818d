"""What both language models share: input checks, parameter groups, and the public call convention
`model(idx) -> logits` with idx a LongTensor (B, T) and logits (B, T, vocab_size)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..cache import ModelCache


class CausalLM(nn.Module):
    config: object

    def check_tokens(self, idx: torch.Tensor) -> None:
        """Raise ValueError naming the problem for a malformed token batch."""
        if not isinstance(idx, torch.Tensor):
            raise ValueError(f"expected token ids as a torch.Tensor, got {type(idx).__name__}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"token ids must be an integer tensor (torch.long), got dtype {idx.dtype}")
        if idx.dim() != 2:
            raise ValueError(f"token ids must have shape (batch, time), got shape {tuple(idx.shape)}")
        if idx.shape[1] == 0:
            raise ValueError("token ids must contain at least one position, got an empty sequence")
        if torch.compiler.is_compiling():
            return  # the range check needs a device sync and a data-dependent branch
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size})")

    def check_mask(self, mask: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
        """A padding mask (B, T) as bool, True at real tokens; None when absent or all True (the unpadded path)."""
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor) or mask.shape != idx.shape:
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"the padding mask must be a tensor shaped like the token ids {tuple(idx.shape)}, got {got}")
        mask = mask.to(device=idx.device, dtype=torch.bool)
        if torch.compiler.is_compiling():
            return mask
        return None if bool(mask.all()) else mask

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample max_new_tokens tokens after idx (B, T); temperature 0 is greedy. See generation.py."""
        from ..generation import generate

        return generate(self, idx, max_new_tokens, temperature, top_k, use_cache, generator)

    # Subclasses define embed(idx, start) -> (B, T, d) for tokens at positions start.., logits(x) -> (B, T, V),
    # `blocks` with prefill(x) -> (x, cache) and step(x_t, cache) -> x_t, and check_length(T) if T is bounded.
    # The longest context the model can attend to; None: unbounded. Callers ask this (generation crops to it, scorers
    # skip longer contexts), never the model's type or config.
    max_context: int | None = None

    def check_length(self, T: int) -> None:
        """Raise ValueError if the model cannot take T positions (no limit by default)."""

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ModelCache]:
        """Run a prompt (B, T) in one parallel pass: logits (B, T, V) and the cache to continue from.
        mask (B, T), optional: False at left padding; the cache then keeps it and decoding never reads the pads."""
        self.check_tokens(idx)
        self.check_length(idx.shape[1])
        mask = self.check_mask(mask, idx)
        x = self.embed(idx, 0, mask)
        cache = ModelCache(length=idx.shape[1], mask=mask)
        for block in self.blocks:
            x, block_cache = block.prefill(x, mask)
            cache.blocks.append(block_cache)
        return self.logits(x), cache

    @torch.no_grad()
    def decode_step(self, idx: torch.Tensor, cache: ModelCache) -> torch.Tensor:
        """Consume one new token per sequence (B, 1) and return its logits (B, 1, V): O(context) work."""
        self.check_tokens(idx)
        if idx.shape[1] != 1:
            raise ValueError(f"decode_step takes one token per sequence, got shape {tuple(idx.shape)}")
        self.check_length(cache.length + 1)
        return self._decode(idx, cache)

    def _decode(self, idx: torch.Tensor, cache: ModelCache) -> torch.Tensor:
        """decode_step without the input checks: for `generate`, whose tokens are sampled in range."""
        if cache.mask is not None:  # the new token is real
            cache.mask = torch.cat([cache.mask, cache.mask.new_ones(idx.shape[0], 1)], dim=1)
        x = self.embed(idx, cache.length, cache.mask)
        for block, block_cache in zip(self.blocks, cache.blocks):
            x = block.step(x, block_cache, cache.mask)
        cache.length += 1
        return self.logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) final hidden states -> (B, T, V) through ln_f and the tied embedding. The Library head's 1/√d
        scale (`logit_scale`, 1 for GPT-2's) is applied to the d-wide input, not the V-wide output: same product,
        V/d times fewer multiplies."""
        h = self.ln_f(x)
        return (h * self.logit_scale if self.logit_scale != 1.0 else h) @ self.wte.weight.t()

    def num_params(self) -> int:
        """Parameter count, tied weights counted once."""
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups as in the reference: decay tensors with ≥ 2 dims (matrices, embedding, memory banks),
        not 1-D ones (LayerNorm weights, per-head scalars)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
