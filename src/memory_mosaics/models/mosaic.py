"""The Memory Mosaic language model.

    x = E[idx]                                  token embedding only: no positional encoding of any kind
    repeat n_layer times (pre-LN residual):
        x = x + ContextMemory(LN₁(x))           (layers/context_memory.py)
        x = x + PersistentMemory(LN₂(x))        (layers/persistent_memory.py)
    logits = LN_f(x) Eᵀ · c                     tied embedding; c = 1/√d (init="library") or 1 ("gpt2", "v2")

Initialisation (layers/init.py) is the config's `init`: "library" follows the authors' Library (every Linear
N(0, 1/fan_in); c_proj N(0, 1/(fan_in·n_layer)); the tied embedding std 1/√d — the output Linear's init wins over
nn.Embedding's N(0,1)); "gpt2" follows nanoMosaics (0.02; c_proj 0.02/√(2·n_layer); no logit scale); "v2" is gpt2's,
then v2's truncated normals (layers/v2_init.py). Banks N(0, 1/d_h) in all. Either way the initial loss is close to ln(vocab_size).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import MosaicConfig
from ..layers import MLP, ContextMemory, PersistentMemory, SwiGLU, set_impl
from ..layers.init import embedding_std, logit_scale
from ..layers.three_level_memory import ContextMemoryV2
from ..layers.v2_init import v2_init_
from .base import CausalLM


class MosaicBlock(nn.Module):
    def __init__(self, config: MosaicConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=False)
        self.cmem = ContextMemoryV2(config) if config.uses_v2_memory else ContextMemory(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=False)
        if config.ffn == "pmem":
            self.pmem = PersistentMemory(config)
        else:
            cls = MLP if config.ffn == "mlp" else SwiGLU
            self.pmem = cls(config.n_embd, config.ffn_hidden, config.dropout, config.init, config.n_layer)

    def reset_parameters(self) -> None:
        for module in (self.ln_1, self.cmem, self.ln_2, self.pmem):
            module.reset_parameters()

    def _ffn(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # The MLP / SwiGLU ablations are per-position: padding cannot reach the real tokens through them.
        return self.pmem(x, mask) if mask is not None and isinstance(self.pmem, PersistentMemory) else self.pmem(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.cmem(self.ln_1(x), mask)
        return x + self._ffn(self.ln_2(x), mask)

    def prefill(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        y, cmem_cache = self.cmem.prefill(self.ln_1(x), mask)
        x = x + y
        if isinstance(self.pmem, PersistentMemory):
            y, pmem_state = self.pmem.prefill(self.ln_2(x), mask)
        else:  # MLP / SwiGLU ablation: stateless
            y, pmem_state = self.pmem(self.ln_2(x)), None
        return x + y, [cmem_cache, pmem_state]

    def step(self, x_t: torch.Tensor, cache: list, mask: torch.Tensor | None = None) -> torch.Tensor:
        x_t = x_t + self.cmem.step(self.ln_1(x_t), cache[0], mask)
        if isinstance(self.pmem, PersistentMemory):
            y, cache[1] = self.pmem.step(self.ln_2(x_t), cache[1])
        else:
            y = self.pmem(self.ln_2(x_t))
        return x_t + y


class MemoryMosaic(CausalLM):
    def __init__(self, config: MosaicConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(MosaicBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.logit_scale = logit_scale(config.init, config.n_embd)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every tensor (config.init; also usable after building on the meta device). Each layer owns
        its init; the embedding comes last, as in the Library, where the tied output Linear's init wins."""
        for block in self.blocks:
            block.reset_parameters()
        self.ln_f.reset_parameters()
        nn.init.normal_(self.wte.weight, std=embedding_std(self.config.init, self.config.n_embd))
        if self.config.init == "v2":  # v2's truncated normals replace the draws above (layers/v2_init.py)
            v2_init_(self)

    def embed(self, idx: torch.Tensor, start: int = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token embedding only: no positional encoding, so `start` plays no part."""
        return self.wte(idx)

    def set_impl(self, impl: str) -> MemoryMosaic:
        """Switch every layer between the "fast" and "reference" implementations (same parameters)."""
        self.config = self.config.replace(impl=impl)
        set_impl(self, impl)
        return self

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, vocab_size). Any T ≥ 1 (block_size is only the training context).
        mask (B, T), optional: False at padding, which never enters a memory (ops/padding.py)."""
        self.check_tokens(idx)
        mask = self.check_mask(mask, idx)
        x = self.embed(idx)
        self._share_long_offset()
        try:
            for block in self.blocks:
                x = block(x, mask)
        finally:
            self._share_long_offset(clear=True)
        return self.logits(x)

    def _share_long_offset(self, clear: bool = False) -> None:
        """long_offset_draw="forward": one m ~ U[m_lo, m_hi] for every layer of this training forward pass (the
        default "layer" lets each layer draw its own; layers/three_level_memory.py)."""
        c = self.config
        if c.long_offset_draw != "forward" or not c.long_offset_max or not (self.training or clear):
            return
        m = None if clear else int(torch.randint(c.long_offset_min, c.long_offset_max + 1, ()).item())
        for block in self.blocks:
            block.cmem.shared_m = m
