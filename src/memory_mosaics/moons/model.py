"""The three-moons memory network: one context memory with complex-structured maps.

    k_t = W_φ x_t              keys = queries, no leaky average, no normalisation
    v_t = W_ψ x_{t+1}          pure peek (γ = 0)
    y_t = W_z [Σ_{j<t} softmax_j(β k_tᵀk_j) v_j]_heads,   β = 50 fixed, y_0 = 0;  y_t predicts x_{t+1}

Each map is a `ComplexLinear` (18 parameters), so 54 in all for 1 head (d_h 6) or 3 heads (d_h 2).
Retrieval is the library's strict-past op; β goes into the queries because the op uses scale 1.

Generation keeps a cache of keys and of ψ-images u_t = W_ψ x_t (the library's growing buffers). The value of
position j is u_{j+1}, so it is complete as soon as x_{j+1} arrives: the query at t reads keys 0..t-1 with values
u_1..u_t.

Why this is not the library's ContextMemory: that layer's keys are s·Norm(leaky_avg(W_φ x)) with a learned
bandwidth, and its values α·Norm((1−γ)W_ψ x_{t+1} + γW_ψ x_t) with learned α and γ, from real nn.Linear maps. The
reference's moons model has unnormalised keys W_φ x_t with a fixed β = 50, pure-peek unnormalised values, and
complex-structured maps; expressing that in ContextMemory would need new switches in the language-model core
(value normalisation, a projection factory, a fixed-β mode) and would change the published moons numbers. It
shares the library's pieces instead: the strict-past retrieval ops, head splitting and the cache buffers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import GrowingBuffer
from ..layers.heads import merge_heads, split_heads
from ..ops import strict_past_retrieval, strict_past_retrieval_reference

BETA = 50.0
DIM = 6


class ComplexLinear(nn.Module):
    """Linear map (no bias) whose 2×2 blocks are [[a, c], [−c, a]]: a complex (n_out/2)×(n_in/2) matrix.

    Stores only the free parameters a, c: (n_out/2, n_in/2) each. Init: nn.Linear's uniform ±1/√n_in, projected
    onto the complex form (as the reference's `complexify`)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        if n_in % 2 or n_out % 2:
            raise ValueError(f"ComplexLinear needs even dims, got {n_in}->{n_out}")
        bound = 1.0 / math.sqrt(n_in)
        w = torch.empty(n_out // 2, 2, n_in // 2, 2).uniform_(-bound, bound)  # (o, 2, i, 2) blocks
        self.a = nn.Parameter(0.5 * (w[:, 0, :, 0] + w[:, 1, :, 1]))
        self.c = nn.Parameter(0.5 * (w[:, 0, :, 1] - w[:, 1, :, 0]))

    @property
    def weight(self) -> torch.Tensor:
        """(n_out, n_in) real matrix."""
        a, c = self.a, self.c
        blocks = torch.stack([torch.stack([a, c], -1), torch.stack([-c, a], -1)], 1)  # (o, 2, i, 2)
        o, _, i, _ = blocks.shape
        return blocks.reshape(2 * o, 2 * i)

    def magnitude(self) -> torch.Tensor:
        """|complex entry| = √(a² + c²): (n_out/2, n_in/2)."""
        return torch.sqrt(self.a ** 2 + self.c ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class MoonsCache:
    """Keys k_0..k_{t-1} and ψ-images u_0..u_{t-1} (B, H, n, d_h) of the n steps seen so far, in the library's
    growing buffers (cache.py): a step appends, it never copies what is stored."""

    def __init__(self, keys: torch.Tensor, u: torch.Tensor):
        self.keys, self.u = GrowingBuffer(keys), GrowingBuffer(u)

    def __len__(self) -> int:
        return len(self.keys)

    def truncate(self, n: int) -> MoonsCache:
        """A new cache of only the first n steps (strict causality makes this equal to prefilling them)."""
        return MoonsCache(self.keys.view()[..., :n, :], self.u.view()[..., :n, :])


class MoonsMemory(nn.Module):
    def __init__(self, n_head: int = 3, dim: int = DIM, beta: float = BETA):
        super().__init__()
        if n_head < 1 or dim % n_head or (dim // n_head) % 2:
            raise ValueError(f"n_head must split dim {dim} into even head dims, got {n_head}")
        self.n_head, self.dim, self.beta = n_head, dim, beta
        self.key = ComplexLinear(dim, dim)    # W_φ
        self.value = ComplexLinear(dim, dim)  # W_ψ
        self.out = ComplexLinear(dim, dim)    # W_z

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected observations (B, T, {self.dim}), got {tuple(x.shape)}")

    def _kqv(self, x: torch.Tensor):
        k = split_heads(self.key(x), self.n_head)  # (B, H, T, d_h)
        u = split_heads(self.value(x), self.n_head)  # (B, H, T, d_h), u_t = W_ψ x_t
        v = F.pad(u[:, :, 1:], (0, 0, 0, 1))  # v_t = u_{t+1}; v_{T-1} is never read (strict past)
        return self.beta * k, k, v, u

    def forward(self, x: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """x: (B, T, 6) -> predictions of x_{t+1}: (B, T, 6). reference=True uses the explicit T×T path."""
        y, _ = self.prefill(x, reference)
        return y

    def prefill(self, x: torch.Tensor, reference: bool = False):
        """Full forward that also returns the generation cache."""
        self._check(x)
        q, k, v, u = self._kqv(x)
        retrieve = strict_past_retrieval_reference if reference else strict_past_retrieval
        y = self.out(merge_heads(retrieve(q, k, v)))
        return y, MoonsCache(k, u)

    def read(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries β·k, keys k and values v_t = u_{t+1} for x (B, T, 6), each (B, H, T, d_h): the interface of
        ContextMemory.read, so analysis.memories.context_retrievals gives this model's retrieval weights too."""
        self._check(x)
        q, k, v, _ = self._kqv(x)
        return q, k, v

    @property
    def c_proj(self) -> ComplexLinear:
        """The output map W_z under ContextMemory's name (analysis.memories reconstructs outputs through it)."""
        return self.out

    def decode_step(self, x_t: torch.Tensor, cache: MoonsCache) -> torch.Tensor:
        """Append x_t (B, 1, 6) at position t = len(cache) to the cache (in place, as CausalLM.decode_step);
        returns the prediction of x_{t+1} (B, 1, 6)."""
        self._check(x_t)
        k_t = split_heads(self.key(x_t), self.n_head)  # (B, H, 1, d_h)
        u_t = split_heads(self.value(x_t), self.n_head)
        empty = len(cache) == 0
        cache.u.append(u_t)
        if empty:  # nothing stored: y_0 = 0
            y = torch.zeros_like(k_t)
        else:  # keys 0..t-1 with their values u_1..u_t (u_t completes the value of key t-1)
            y = F.scaled_dot_product_attention(self.beta * k_t, cache.keys.view(), cache.u.view()[:, :, 1:],
                                               scale=1.0)
        cache.keys.append(k_t)
        return self.out(merge_heads(y))

    def generate_from(self, first: torch.Tensor, cache: MoonsCache, n: int) -> torch.Tensor:
        """Feed predictions back: `first` (B, 1, 6) is the prediction after the cached context (the cache grows).
        Returns the n generated steps (B, n, 6)."""
        outs = [first]
        for _ in range(n - 1):
            outs.append(self.decode_step(outs[-1], cache))
        return torch.cat(outs, 1)

    @torch.no_grad()
    def generate(self, context: torch.Tensor, n: int, use_cache: bool = True) -> torch.Tensor:
        """Continue a context (B, c, 6) by n steps (B, n, 6). use_cache=False recomputes the full forward each step."""
        if n < 1 or context.shape[1] < 1:
            raise ValueError(f"need a non-empty context and n >= 1, got context {tuple(context.shape)}, n={n}")
        if use_cache:
            y, cache = self.prefill(context)
            return self.generate_from(y[:, -1:], cache, n)
        seq = context
        for _ in range(n):
            seq = torch.cat([seq, self(seq)[:, -1:]], 1)
        return seq[:, context.shape[1]:]
