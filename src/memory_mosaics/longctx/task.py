"""A RULER-style multi-key retrieval task over TinyStories filler, tokenised as UTF-8 bytes.

One example of length L (tokens = bytes, vocabulary 256, byte 0 = end-of-text between stories):

    <stories ... EOT ... stories>  with K facts " The code of NAME is NNNN." inserted at chosen depths
    "\nAnswer: The code of NAME is " NNNN            <- the question comes last; the 4 digits are scored

- Several keys per context: K distinct names, each with its own 4-digit code; one of them is asked, the other K-1
  facts are distractors (same template, other names and codes).
- The asked fact starts at relative depth `depth` of the body (0 = the first token, 1 = just before the question),
  so at long lengths it sits far beyond a short-term window; the distractors are at uniform random depths.
- Scoring: greedy exact match of the 4 digits = all 4 teacher-forced argmaxes right (the greedy continuation
  reproduces the answer iff each step's argmax is the next digit).
Training labels are -100 everywhere except the answer digits, as in MQAR, or (`lm_loss`) every next token: dense
language-modelling supervision, from which a transformer can form the induction heads the copy needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EOT = 0
VOCAB = 256
NAMES = ("Tom", "Lily", "Ben", "Mia", "Sam", "Anna", "Max", "Lucy", "Tim", "Sue", "Jack", "Emma", "Leo", "Zoe",
         "Dan", "Amy", "Bob", "Ella", "Finn", "Ivy", "Joe", "Kate", "Luke", "Nina", "Owen", "Pam", "Ray", "Rose",
         "Ted", "Uma", "Vic", "Wendy")
DIGITS = 4


def encode(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def fact(name: str, code: str) -> np.ndarray:
    return encode(f" The code of {name} is {code}.")


def question(name: str) -> np.ndarray:
    return encode(f"\nAnswer: The code of {name} is ")


@dataclass
class Filler:
    """Stories as one byte stream with EOT between them; windows are drawn at random story starts."""

    tokens: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_documents(cls, docs: list[str]) -> Filler:
        parts, starts, n = [], [], 0
        for d in docs:
            b = encode(d.strip().replace("\x00", ""))
            if len(b) == 0:
                continue
            starts.append(n)
            parts += [b, np.array([EOT])]
            n += len(b) + 1
        if not parts:
            raise ValueError("the filler corpus has no text")
        return cls(np.concatenate(parts), np.array(starts))

    def window(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if n > len(self.tokens):
            raise ValueError(f"the filler corpus has {len(self.tokens)} bytes, fewer than the {n} needed")
        ok = self.starts[self.starts + n <= len(self.tokens)]
        s = int(rng.choice(ok)) if len(ok) else 0
        return self.tokens[s:s + n]


def min_length(n_keys: int) -> int:
    """The shortest example with n_keys facts (longest names) and the question, plus one filler token."""
    longest = max(NAMES, key=len)
    return n_keys * len(fact(longest, "9" * DIGITS)) + len(question(longest)) + DIGITS + 1


def _word_start(body: np.ndarray, p: int, reach: int = 12) -> int:
    """Move an insertion point back to just after a space (at most `reach` bytes) so facts do not split words."""
    for q in range(p, max(0, p - reach) - 1, -1):
        if q == 0 or body[q - 1] in (32, 10, EOT):
            return q
    return p


def make_example(filler: Filler, length: int, n_keys: int, depth: float | None,
                 rng: np.random.Generator, lm_loss: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """One (x, y, needle_position) of exactly `length` tokens. depth None: uniform in [0, 1].
    y labels the answer digits only, or (lm_loss) every next token (the last position has none)."""
    names = rng.choice(len(NAMES), size=n_keys, replace=False)
    codes = [str(c) for c in rng.integers(10 ** (DIGITS - 1), 10 ** DIGITS, size=n_keys)]
    facts = [fact(NAMES[i], c) for i, c in zip(names, codes)]
    q, answer = question(NAMES[names[0]]), encode(codes[0])
    body_len = length - len(q) - len(answer) - sum(len(f) for f in facts)
    if body_len < 1:
        raise ValueError(f"length {length} is too short for {n_keys} facts and the question")
    body = filler.window(body_len, rng)
    # Insertion points in the filler body (a fact goes before body[p]); the asked one at its depth.
    d = rng.uniform() if depth is None else depth
    points = np.concatenate([[round(d * body_len)], rng.integers(0, body_len + 1, size=n_keys - 1)])
    points = np.array([_word_start(body, int(p)) for p in points])
    order = np.argsort(points, kind="stable")
    pieces, prev, needle = [], 0, -1
    for i in order:
        pieces.append(body[prev:points[i]])
        if i == 0:
            needle = sum(len(p) for p in pieces)
        pieces.append(facts[i])
        prev = points[i]
    pieces += [body[prev:], q, answer]
    x_full = np.concatenate(pieces)
    assert len(x_full) == length
    # Inputs predict the next token: position t's label is x[t+1]; only the answer digits are scored.
    x, y = x_full.copy(), np.full(length, -100, dtype=np.int64)
    if lm_loss:
        y[:-1] = x_full[1:]
    else:
        y[length - DIGITS - 1:length - 1] = x_full[length - DIGITS:]
    return x, y, needle


def make_batch(filler: Filler, batch: int, length: int, n_keys: int, depth: float | None,
               rng: np.random.Generator, lm_loss: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, needles = zip(*(make_example(filler, length, n_keys, depth, rng, lm_loss) for _ in range(batch)))
    return np.stack(xs), np.stack(ys), np.array(needles)


def exact_match(logits, y) -> np.ndarray:
    """logits (B, T, V), y (B, T) with the answer labels -> (B,) bool: every scored argmax right."""
    import torch

    scored = y != -100
    right = (logits.argmax(-1) == y) | ~scored
    return right.all(dim=-1).cpu().numpy() if isinstance(right, torch.Tensor) else right.all(-1)
