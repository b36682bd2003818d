"""Multi-query associative recall (Zoology, Arora et al. 2024), the Figure-2 setting:
context k₁ v₁ … k_D v_D, then each key queried once in a zero-filled region at power-law distributed slots;
the label at a query key's position is its value, all other labels -100."""

from __future__ import annotations

import numpy as np

IGNORE = -100


def mqar_batch(batch_size: int, seq_len: int, n_pairs: int, vocab_size: int, rng: np.random.Generator,
               power_a: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """-> inputs (B, L), labels (B, L). Keys from {1…V/2−1}, values from {V/2…V−1}, distinct within a sequence."""
    L, D, V = seq_len, n_pairs, vocab_size
    if L % 2 or V <= L or 4 * D > L or D < 1:
        raise ValueError(f"MQAR needs an even seq_len, vocab_size > seq_len and 1 ≤ 4·n_pairs ≤ seq_len; "
                         f"got L={L}, D={D}, V={V}")
    if D > V // 2 - 1:
        raise ValueError(f"n_pairs {D} exceeds the {V // 2 - 1} available keys")
    half = V // 2
    n_slots = (L - 2 * D) // 2
    p = (np.arange(n_slots) + 1.0) ** (power_a - 1)
    p /= p.sum()
    x = np.zeros((batch_size, L), dtype=np.int64)
    y = np.full((batch_size, L), IGNORE, dtype=np.int64)
    for b in range(batch_size):
        keys = rng.choice(np.arange(1, half), size=D, replace=False)
        vals = rng.choice(np.arange(half, V), size=D, replace=False)
        x[b, 0 : 2 * D : 2] = keys
        x[b, 1 : 2 * D : 2] = vals
        slots = rng.choice(n_slots, size=D, replace=False, p=p)
        pos = 2 * D + 2 * slots
        x[b, pos] = keys
        y[b, pos] = vals
    return x, y


def mqar_accuracy(logits, labels) -> float:
    """Argmax accuracy over labelled positions, averaged per example then over examples (Zoology valid/accuracy).
    logits (B, L, V) tensor, labels (B, L) tensor."""
    mask = labels != IGNORE
    ok = (logits.argmax(-1) == labels) & mask
    per_example = ok.sum(1).float() / mask.sum(1).clamp_min(1).float()
    return float(per_example[mask.any(1)].mean())
