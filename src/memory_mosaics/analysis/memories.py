"""Per layer and head: what each memory retrieved for an input, and the learned per-head constants."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..layers import ContextMemory, PersistentMemory
from ..layers.heads import merge_heads
from ..ops.strict_past import strict_past_weights


@dataclass
class ContextRetrieval:
    layer: int
    weights: torch.Tensor  # (B, H, T, T): row t = how much query t read each stored pair j < t (row 0 is 0)
    values: torch.Tensor  # (B, H, T, d_h): the stored values v_j
    output: torch.Tensor  # (B, T, d): the layer's actual output for this input (after c_proj)

    def reconstruct(self, memory: ContextMemory) -> torch.Tensor:
        """c_proj(concat_h weights @ values): must equal `output` (tested)."""
        return memory.c_proj(merge_heads(self.weights @ self.values))


@dataclass
class PersistentRecall:
    layer: int
    weights: torch.Tensor  # (B, H, T, P): softmax over the P bank slots per query

    def top_slots(self, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """The k most strongly read slots per (B, H, T): (weights, slot indices)."""
        return torch.topk(self.weights, min(k, self.weights.shape[-1]), dim=-1)


def _capture_inputs(model, idx: torch.Tensor, kind: type | tuple[type, ...]) -> list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    captured = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.append((mod, inp[0], out)))
             for m in model.modules() if isinstance(m, kind)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return captured


@torch.no_grad()
def context_retrievals(model, idx: torch.Tensor) -> list[ContextRetrieval]:
    """For every context memory (a ContextMemory, or the three-moons MoonsMemory, which is its own single memory):
    the retrieval weights over past positions for the input batch idx (tokens (B, T); moons: (B, T, 6))."""
    from ..moons.model import MoonsMemory

    result = []
    for layer, (mem, x, out) in enumerate(_capture_inputs(model, idx, (ContextMemory, MoonsMemory))):
        q, k, v = mem.read(x)
        result.append(ContextRetrieval(layer, strict_past_weights(q, k), v, out))
    return result


@torch.no_grad()
def persistent_recalls(model, idx: torch.Tensor) -> list[PersistentRecall]:
    """For every persistent memory: the softmax weights over its bank slots for idx (B, T)."""
    result = []
    for layer, (mem, x, _) in enumerate(_capture_inputs(model, idx, PersistentMemory)):
        q = mem.query(x)
        result.append(PersistentRecall(layer, torch.softmax(q @ mem.key_bank.transpose(-1, -2), dim=-1)))
    return result


@torch.no_grad()
def head_table(model) -> list[dict]:
    """One row per (layer, head) with the learned constants:
    - cmem_time_constant: 1/b_h in tokens (the leaky average forgets with λ = exp(-b) per step; inf: no averaging)
    - cmem_bandwidth: β_h = s_h², the inverse kernel bandwidth (scores are β·k̂ᵀk̂)
    - cmem_gamma: γ_h, the weight of x_t against x_{t+1} in the value (0: pure peek)
    - cmem_value_scale: α_h
    - pmem_time_constant, pmem_query_scale (s_h², the query norm against the bank), pmem_output_scale."""
    rows = []
    layers = [m for m in model.modules() if isinstance(m, ContextMemory)]
    pmems = [m for m in model.modules() if isinstance(m, PersistentMemory)]
    for layer, cmem in enumerate(layers):
        b = cmem.key.decay_rate()
        beta = cmem.key.bandwidth()
        alpha = cmem.value.scale()
        gamma = cmem.value.gamma if cmem.value.peek else torch.ones_like(alpha)
        pmem = pmems[layer] if layer < len(pmems) else None
        for h in range(b.shape[0]):
            row = dict(layer=layer, head=h, cmem_time_constant=float(1.0 / b[h]), cmem_decay=float(torch.exp(-b[h])),
                       cmem_bandwidth=float(beta[h]), cmem_gamma=float(gamma[h]), cmem_value_scale=float(alpha[h]))
            if pmem is not None:
                row.update(pmem_time_constant=float(1.0 / pmem.query.decay_rate()[h]),
                           pmem_query_scale=float(pmem.query.scale()[h]), pmem_output_scale=float(pmem.scale()[h]))
            rows.append(row)
    return rows
