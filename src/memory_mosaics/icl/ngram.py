"""In-context n-gram reference predictors for RegBench. They see only the current
sequence, never the training set, and give the anchors the metric code is tested against.

    unigram  letter counts so far in the sequence
    bigram   counts of (previous letter or string start) -> letter within the strings seen so far; backs off
             to the unigram when the context was never seen
    trigram  (two previous symbols, string start padded) -> letter; backs off to the bigram, then the unigram

Only letter targets are counted (p_DFA ignores the end-of-string event). Each returns (n, 20) probabilities,
one row per input position: the prediction for the token after input j, using inputs 0…j.
"""

from __future__ import annotations

import numpy as np

from .regbench import N_LETTERS, SEP, VOCAB_SIZE

START = N_LETTERS  # context id for "string start" (letters are 0…17)


def ngram_probs(inputs: np.ndarray, order: int) -> np.ndarray:
    """inputs (n,) token ids of one sequence -> (n, 20) next-token probabilities of the in-context n-gram."""
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    n = len(inputs)
    out = np.zeros((n, VOCAB_SIZE))
    uni = np.zeros(N_LETTERS)
    bi = np.zeros((N_LETTERS + 1, N_LETTERS))
    tri = np.zeros((N_LETTERS + 1, N_LETTERS + 1, N_LETTERS))
    p2, p1 = START, START  # the two previous symbols within the current string
    for j, tok in enumerate(inputs):
        if tok == SEP:
            p2, p1 = START, START
        else:
            a = int(tok) - 1
            uni[a] += 1
            bi[p1, a] += 1
            tri[p2, p1, a] += 1
            p2, p1 = p1, a
        # Predict the token after input j from contexts ending at j (back-off when unseen).
        row = uni
        if order >= 2 and bi[p1].sum() > 0:
            row = bi[p1]
        if order >= 3 and tri[p2, p1].sum() > 0:
            row = tri[p2, p1]
        out[j, 1 : N_LETTERS + 1] = row / row.sum()
    return out
