"""Induction-head task of Bietti et al. 2023: a bigram background with K trigger
tokens whose successor is a per-sequence output. Predicting an output at its second and later occurrences
(outs ≥ 2) needs in-context copying: a 2-layer transformer learns an induction head; the Memory Mosaic claims
one layer suffices.

    bigram = Bigram.from_text(open("tinyshakespeare.txt").read())   # π_u, π_b(·|i) over sorted characters
    bigram = Bigram.random(vocab_size=32, support=4, rng=rng)        # CPU fallback of §2.4
    task = InductionTask(bigram, n_triggers=5, fixed_triggers=True, seq_len=256)
    x, y, outs = task.sample(batch_size, rng)                        # (B, T) each
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Bigram:
    unigram: np.ndarray  # π_u (V,)
    transition: np.ndarray  # π_b (V, V), rows sum to 1
    itos: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.unigram)

    @classmethod
    def from_text(cls, text: str) -> Bigram:
        """Character frequencies and consecutive-pair counts; ids in sorted character order (as in nanoGPT)."""
        if len(text) < 2:
            raise ValueError("the bigram corpus needs at least 2 characters")
        itos = sorted(set(text))
        lut = {c: i for i, c in enumerate(itos)}
        ids = np.fromiter((lut[c] for c in text), dtype=np.int64, count=len(text))
        V = len(itos)
        uni = np.bincount(ids, minlength=V).astype(np.float64)
        pairs = np.bincount(ids[:-1] * V + ids[1:], minlength=V * V).reshape(V, V).astype(np.float64)
        empty = pairs.sum(1) == 0  # a character seen only at the very end: fall back to π_u
        pairs[empty] = uni
        return cls(uni / uni.sum(), pairs / pairs.sum(1, keepdims=True), itos)

    @classmethod
    def random(cls, vocab_size: int = 32, support: int = 4, rng: np.random.Generator | None = None) -> Bigram:
        """§2.4 CPU fallback: each row is a random distribution over `support` random successors."""
        rng = rng or np.random.default_rng(0)
        if not 1 <= support <= vocab_size:
            raise ValueError(f"support must be in [1, vocab_size], got {support}")
        trans = np.zeros((vocab_size, vocab_size))
        for i in range(vocab_size):
            cols = rng.choice(vocab_size, size=support, replace=False)
            trans[i, cols] = rng.dirichlet(np.ones(support))
        # Stationary distribution as π_u (power iteration; the chain mixes quickly).
        pi = np.full(vocab_size, 1.0 / vocab_size)
        for _ in range(200):
            pi = 0.5 * pi + 0.5 * pi @ trans  # lazy chain: converges even when periodic
        return cls(pi / pi.sum(), trans, [f"t{i}" for i in range(vocab_size)])


def _sample_rows(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling, one row per draw: cum (B, V) cumulative probabilities, u (B,) -> (B,) ids."""
    return np.minimum((cum < u[:, None] * cum[:, -1:]).sum(1), cum.shape[1] - 1)


@dataclass
class InductionTask:
    bigram: Bigram
    n_triggers: int = 5
    fixed_triggers: bool = True  # the K most frequent tokens for every sequence; else K fresh draws from π_u
    seq_len: int = 256

    def __post_init__(self):
        if not 1 <= self.n_triggers < self.bigram.vocab_size:
            raise ValueError(f"n_triggers must be in [1, vocab_size), got {self.n_triggers}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be ≥ 2, got {self.seq_len}")
        self._cum_b = np.cumsum(self.bigram.transition, axis=1)
        self._cum_u = np.cumsum(self.bigram.unigram)
        self.fixed = np.argsort(-self.bigram.unigram, kind="stable")[: self.n_triggers]

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y = z[:, :T], z[:, 1:T+1] and outs (B, T): 0 where x_t is not a trigger, else how many times x_t
        has occurred so far (this one included); outs ≥ 2 marks outputs predictable in context."""
        B, T, V, K = batch_size, self.seq_len, self.bigram.vocab_size, self.n_triggers
        if self.fixed_triggers:
            trig = np.broadcast_to(self.fixed, (B, K))
        else:  # K distinct tokens from π_u without replacement (Gumbel top-k)
            g = np.log(self.bigram.unigram + 1e-30)[None] - np.log(-np.log(rng.random((B, V))))
            trig = np.argsort(-g, axis=1)[:, :K]
        out_tok = rng.integers(0, V, size=(B, K))  # uniform over all tokens, fresh per sequence
        lookup = np.full((B, V), -1)  # lookup[b, token] = its output, -1 if not a trigger
        np.put_along_axis(lookup, trig, out_tok, axis=1)
        z = np.empty((B, T + 1), dtype=np.int64)
        outs = np.zeros((B, T), dtype=np.int64)
        counts = np.zeros((B, V), dtype=np.int64)
        rows = np.arange(B)
        z[:, 0] = np.minimum(np.searchsorted(self._cum_u, rng.random(B) * self._cum_u[-1], side="right"), V - 1)
        for t in range(T):
            cur = z[:, t]
            o = lookup[rows, cur]
            is_trig = o >= 0
            counts[rows[is_trig], cur[is_trig]] += 1
            outs[:, t] = np.where(is_trig, counts[rows, cur], 0)
            nxt = _sample_rows(self._cum_b[cur], rng.random(B))
            z[:, t + 1] = np.where(is_trig, o, nxt)
        return z[:, :T], z[:, 1:], outs


def induction_metrics(logits, y, outs) -> dict:
    """acc_end (headline): argmax accuracy where outs ≥ 2; acc_tot where outs ≥ 1; CE on bigram / head positions.
    logits (B, T, V) tensor, y and outs (B, T) tensors."""
    import torch.nn.functional as F

    pred = logits.argmax(-1)
    ok = pred == y
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="none").view_as(y)
    end, tot, bg = outs >= 2, outs >= 1, outs == 0
    return dict(
        accuracy=float(ok[end].float().mean()) if end.any() else float("nan"),
        acc_tot=float(ok[tot].float().mean()) if tot.any() else float("nan"),
        loss_head=float(ce[end].mean()) if end.any() else float("nan"),
        loss_bigram=float(ce[bg].mean()) if bg.any() else float("nan"),
    )
