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
from typing import NamedTuple

import numpy as np

EOT = 0
VOCAB = 256
NAMES = ("Tom", "Lily", "Ben", "Mia", "Sam", "Anna", "Max", "Lucy", "Tim", "Sue", "Jack", "Emma", "Leo", "Zoe",
         "Dan", "Amy", "Bob", "Ella", "Finn", "Ivy", "Joe", "Kate", "Luke", "Nina", "Owen", "Pam", "Ray", "Rose",
         "Ted", "Uma", "Vic", "Wendy")
SURNAMES = ("Hill", "Hall", "Reed", "Ross", "Gray", "Green", "Brown", "Black", "Stone", "Wood", "Lake", "Park",
            "Bell", "Fox", "King", "Cole")
TOKEN_NAMES = 128  # names="token": name i is the single byte 128 + i (the filler is ASCII: never there otherwise)
DIGITS = 4


class NameKind(NamedTuple):
    pool: int  # distinct names: the most facts one example can hold
    longest: str  # as long (in tokens) as the longest name: what min_length counts


# The name kinds (LongContextConfig.names; draw_names draws them): the one table of their sizes.
NAME_KINDS = {
    "single": NameKind(len(NAMES), max(NAMES, key=len)),  # first names
    "shared": NameKind(len(NAMES) * len(SURNAMES), max(NAMES, key=len) + " " + max(SURNAMES, key=len)),
    "token": NameKind(TOKEN_NAMES, "x"),  # one byte each
}


def encode(text: str | bytes) -> np.ndarray:
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)


GAP = ", as the old blue book says,"  # far=True: between the name and " is " in every fact and question


def fact(name: str | bytes, code: str, far: bool = False) -> np.ndarray:
    return np.concatenate([encode(" The code of "), encode(name), encode(f"{GAP if far else ''} is {code}.")])


def question(name: str | bytes, far: bool = False) -> np.ndarray:
    return np.concatenate([encode("\nAnswer: The code of "), encode(name), encode(f"{GAP if far else ''} is ")])


@dataclass
class Filler:
    """Stories as one byte stream with EOT between them; windows are drawn at random story starts."""

    tokens: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_documents(cls, docs: list[str]) -> Filler:
        parts, starts, n = [], [], 0
        for d in docs:
            b = encode(d.strip().replace("\x00", "").encode("ascii", "ignore"))  # ASCII: bytes ≥ 128 are names
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


def min_length(n_keys: int, n_queries: int = 1, names: str = "single", far: bool = False) -> int:
    """The shortest example with n_keys facts (longest names) and n_queries questions, plus one filler token."""
    longest = NAME_KINDS[names].longest
    return (n_keys * len(fact(longest, "9" * DIGITS, far)) + n_queries * (len(question(longest, far)) + DIGITS)
            + 1)


def facts_at(length: int, n_keys: int, density_base: int = 0) -> int:
    """How many facts an example of `length` tokens holds: n_keys, or (density_base > 0) n_keys per density_base
    tokens, so that the distractors grow with the context (RULER's multi-key variants fill the haystack)."""
    return n_keys if density_base <= 0 else max(n_keys, round(n_keys * length / density_base))


def draw_names(n: int, kind: str, rng: np.random.Generator) -> list[str | bytes]:
    """n distinct names; the first is the asked one. "single": first names. "token": one byte each (128 + i), so the
    key is a single token, as in MQAR. "shared": first + last name, and the distractors share a word with the asked
    name (alternately its first and its last name, while such names remain), so a reader that matches only the
    last word before " is " — or only one word — confuses them."""
    if kind == "single":
        return [NAMES[i] for i in rng.choice(len(NAMES), size=n, replace=False)]
    if kind == "token":
        return [bytes([128 + int(i)]) for i in rng.choice(TOKEN_NAMES, size=n, replace=False)]
    f, s = int(rng.integers(len(NAMES))), int(rng.integers(len(SURNAMES)))
    same_first = [(f, j) for j in rng.permutation(len(SURNAMES)) if j != s]
    same_last = [(i, s) for i in rng.permutation(len(NAMES)) if i != f]
    chosen = [(f, s)]
    while len(chosen) < n and (same_first or same_last):
        pool = same_first if (len(chosen) % 2 and same_first) or not same_last else same_last
        chosen.append(pool.pop(0))
    taken = set(chosen)
    while len(chosen) < n:  # more facts than names sharing a word: any other name
        pair = (int(rng.integers(len(NAMES))), int(rng.integers(len(SURNAMES))))
        if pair not in taken:
            taken.add(pair)
            chosen.append(pair)
    return [f"{NAMES[i]} {SURNAMES[j]}" for i, j in chosen]


def _word_start(body: np.ndarray, p: int, reach: int = 12) -> int:
    """Move an insertion point back to just after a space (at most `reach` bytes) so facts do not split words."""
    for q in range(p, max(0, p - reach) - 1, -1):
        if q == 0 or body[q - 1] in (32, 10, EOT):
            return q
    return p


def make_example(filler: Filler, length: int, n_keys: int, depth: float | None,
                 rng: np.random.Generator, lm_loss: bool = False, n_queries: int = 1, names: str = "single",
                 label_all: bool = True, far: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """One (x, y, needle_position) of exactly `length` tokens. depth None: uniform in [0, 1].
    n_queries questions close the example; the last one asks the fact at `depth`, the others other facts (at
    random depths), in random order. y labels the answer digits of every question (label_all, training) or of
    the last one only (scoring), or (lm_loss) every next token (the last position has none). far: a fixed phrase
    (GAP) sits between the name and " is ", so the name lies ~30 tokens before the answer, in the fact and in the
    question: a recency-weighted key summary sees mostly the shared phrase."""
    if not 1 <= n_queries <= n_keys:
        raise ValueError(f"n_queries must be in [1, n_keys = {n_keys}], got {n_queries}")
    who = draw_names(n_keys, names, rng)
    codes = [str(c) for c in rng.integers(10 ** (DIGITS - 1), 10 ** DIGITS, size=n_keys)]
    facts = [fact(w, c, far) for w, c in zip(who, codes)]
    others = list(1 + rng.permutation(n_keys - 1)[:n_queries - 1]) if n_queries > 1 else []
    asked = [*others, 0]  # fact indices, the depth-controlled one last
    tail = [(question(who[i], far), encode(codes[i])) for i in asked]
    body_len = length - sum(len(q) + len(a) for q, a in tail) - sum(len(f) for f in facts)
    if body_len < 1:
        raise ValueError(f"length {length} is too short for {n_keys} facts and {n_queries} question(s)")
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
    pieces.append(body[prev:])
    answers, n = [], sum(len(p) for p in pieces)  # start offsets of the answers
    for q, a in tail:
        pieces += [q, a]
        answers.append(n + len(q))
        n += len(q) + len(a)
    x_full = np.concatenate(pieces)
    assert len(x_full) == length
    # Inputs predict the next token: position t's label is x[t+1]; the scored labels are answer digits.
    x, y = x_full.copy(), np.full(length, -100, dtype=np.int64)
    if lm_loss:
        y[:-1] = x_full[1:]
    else:
        for s in answers if label_all else answers[-1:]:
            y[s - 1:s - 1 + DIGITS] = x_full[s:s + DIGITS]
    return x, y, needle


def make_batch(filler: Filler, batch: int, length: int, n_keys: int, depth: float | None,
               rng: np.random.Generator, lm_loss: bool = False, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, needles = zip(*(make_example(filler, length, n_keys, depth, rng, lm_loss, **kw) for _ in range(batch)))
    return np.stack(xs), np.stack(ys), np.array(needles)


def exact_match(logits, y) -> np.ndarray:
    """logits (B, T, V), y (B, T) with the answer labels -> (B,) bool: every scored argmax right."""
    import torch

    scored = y != -100
    right = (logits.argmax(-1) == y) | ~scored
    return right.all(dim=-1).cpu().numpy() if isinstance(right, torch.Tensor) else right.all(-1)
