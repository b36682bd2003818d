"""RegBench (Akyürek et al. 2024): in-context learning of random regular languages. Clean-room generator
written from the paper's specification — no third-party automaton library.

    dfa = sample_dfa(rng)                 # random partial DFA, every state accepting, start state 0
    seq = sample_sequence(dfa, rng)       # 10–19 strings of length 1–49 joined by "|"
    data = generate(seed=0, n_train=100)  # train / test / val splits of held-out automata

Vocabulary (ids in sorted string order): "." = 0 (pad), "a"…"r" = 1…18, "|" = 19. A letter with symbol index
s (0…17) has token id s + 1. Everything is a pure function of the seed: numpy Generators seeded from
SeedSequence children, ordered containers only (the original depends on PYTHONHASHSEED).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_LETTERS = 18
VOCAB_SIZE = 20
PAD, SEP = 0, 19
IGNORE = -100
ITOS = ["."] + [chr(ord("a") + i) for i in range(N_LETTERS)] + ["|"]

MIN_STATES, MAX_STATES = 4, 12  # inclusive
MIN_ALPHABET = 4
MAX_EDGES = 3
MIN_STRINGS, MAX_STRINGS = 10, 19
MAX_STRING_LEN = 49


@dataclass
class DFA:
    """A partial DFA over symbols 0…17, start state 0, every state accepting.
    delta[s, a] = target state, or -1 where symbol a is rejected from s."""

    delta: np.ndarray  # (n_states, 18) int64

    @property
    def n_states(self) -> int:
        return self.delta.shape[0]

    def out_symbols(self, state: int) -> np.ndarray:
        return np.flatnonzero(self.delta[state] >= 0)

    def n_edges(self) -> int:
        return int((self.delta >= 0).sum())

    def accepts(self, symbols) -> bool:
        s = 0
        for a in symbols:
            s = self.delta[s, a]
            if s < 0:
                return False
        return True

    def key(self) -> bytes:
        """Identifies the language when called on a minimised (canonical) DFA."""
        return self.delta.astype(np.int16).tobytes() + bytes([self.n_states])


def sample_dfa(rng: np.random.Generator) -> DFA:
    """§1.3 'Sampling one DFA' (before minimisation)."""
    n = int(rng.integers(MIN_STATES, MAX_STATES + 1))
    size = int(rng.integers(MIN_ALPHABET, N_LETTERS + 1))
    alphabet = rng.choice(N_LETTERS, size=size, replace=False)
    delta = np.full((n, N_LETTERS), -1, dtype=np.int64)
    for s in range(n):
        e = int(rng.integers(1, MAX_EDGES + 1))
        symbols = rng.choice(alphabet, size=e, replace=False)
        others = np.array([t for t in range(n) if t != s])  # no self-loops
        targets = rng.choice(others, size=e, replace=False)
        delta[s, symbols] = targets
    return DFA(delta)


def minimize(dfa: DFA) -> DFA:
    """Trim (drop states unreachable from 0) and minimise by partition refinement, then renumber states in
    BFS order from the start (symbols in increasing order), so equal languages give identical DFAs.
    All states accept, so the only distinction between states is which strings they reject."""
    # Reachable states in BFS order.
    order, seen = [0], {0}
    for s in order:
        for t in dfa.delta[s][dfa.delta[s] >= 0]:
            if int(t) not in seen:
                seen.add(int(t))
                order.append(int(t))
    delta = dfa.delta[order]
    remap = np.full(dfa.n_states + 1, -1, dtype=np.int64)  # index -1 (reject) maps to -1
    remap[order] = np.arange(len(order))
    delta = remap[delta]  # (n, 18), -1 stays -1 through remap[-1] = -1
    # Moore refinement: block[s] starts equal for all; split on (block, blocks of successors).
    block = np.zeros(len(order), dtype=np.int64)
    while True:
        succ = np.where(delta >= 0, block[np.maximum(delta, 0)], -1)
        sig = np.concatenate([block[:, None], succ], axis=1)
        _, new = np.unique(sig, axis=0, return_inverse=True)
        new = new.reshape(-1)
        if new.max() == block.max():
            break
        block = new
    n_blocks = int(block.max()) + 1
    quotient = np.full((n_blocks, N_LETTERS), -1, dtype=np.int64)
    for s in range(len(order)):
        row = delta[s]
        quotient[block[s]] = np.where(row >= 0, block[np.maximum(row, 0)], -1)
    # Canonical BFS renumbering from the start block.
    start = int(block[0])
    order, seen = [start], {start}
    for s in order:
        for t in quotient[s][quotient[s] >= 0]:
            if int(t) not in seen:
                seen.add(int(t))
                order.append(int(t))
    remap = np.full(n_blocks + 1, -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return DFA(remap[quotient[order]])


def sample_sequence(dfa: DFA, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """§1.3 'Sampling the sequence': returns tokens (n,) and the DFA state after each token (n,)
    (-1 after a separator: the next string restarts at state 0). Each step is uniform over the
    current state's outgoing symbols."""
    outs = [dfa.out_symbols(s) for s in range(dfa.n_states)]
    k = int(rng.integers(MIN_STRINGS, MAX_STRINGS + 1))
    tokens, states = [], []
    for i in range(k):
        if i > 0:
            tokens.append(SEP)
            states.append(-1)
        length = int(rng.integers(1, MAX_STRING_LEN + 1))
        u = rng.random(length)  # one draw per step, vectorised
        s = 0
        for j in range(length):
            syms = outs[s]
            a = int(syms[int(u[j] * len(syms))])
            s = int(dfa.delta[s, a])
            tokens.append(a + 1)
            states.append(s)
    return np.array(tokens, dtype=np.int64), np.array(states, dtype=np.int64)


@dataclass
class Example:
    """One environment: its automaton and its sequence, ready for a causal LM.
    inputs/labels (n,), allowed (n, 20) bool: the legal next letters after each input position (p_DFA's support)."""

    dfa: DFA
    inputs: np.ndarray
    labels: np.ndarray
    allowed: np.ndarray
    n_strings: int = 0


def make_example(dfa: DFA, rng: np.random.Generator) -> Example:
    tokens, states = sample_sequence(dfa, rng)
    inputs, labels = tokens[:-1], tokens[1:].copy()
    labels[labels == SEP] = IGNORE  # the separator is never a training target
    # p_DFA after input j: the state reached by the current string's prefix (state 0 after a separator).
    st = np.where(states[:-1] < 0, 0, states[:-1])
    allowed = np.zeros((len(inputs), VOCAB_SIZE), dtype=bool)
    allowed[:, 1 : N_LETTERS + 1] = dfa.delta[st] >= 0
    return Example(dfa, inputs, labels, allowed, n_strings=int((tokens == SEP).sum()) + 1)


@dataclass
class RegBench:
    train: list[Example]
    test: list[Example]
    val: list[Example]
    seed: int
    meta: dict = field(default_factory=dict)


def _examples(seq: np.random.SeedSequence, n: int) -> list[Example]:
    out = []
    for child in seq.spawn(n):
        rng = np.random.default_rng(child)
        out.append(make_example(sample_dfa(rng), rng))
    return out


def generate(seed: int = 0, n_train: int = 100, n_test: int = 1000) -> RegBench:
    """N training automata, ⌊T/2⌋ test and T − ⌊T/2⌋ validation automata, one sequence each, i.i.d.
    The three splits come from independent SeedSequence children, so the test and validation automata are the
    same for every N (the original's depend on N + T; the distribution is the same). No de-duplication."""
    if n_train < 1 or n_test < 2:
        raise ValueError(f"need n_train ≥ 1 and n_test ≥ 2, got n_train={n_train}, n_test={n_test}")
    train_ss, test_ss, val_ss = np.random.SeedSequence(seed).spawn(3)
    return RegBench(
        train=_examples(train_ss, n_train),
        test=_examples(test_ss, n_test // 2),
        val=_examples(val_ss, n_test - n_test // 2),
        seed=seed,
        meta=dict(seed=seed, n_train=n_train, n_test=n_test),
    )


def collate(examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad a batch to its own longest sequence: inputs with "." (0), labels with -100.
    (The models are causal, so padding per batch instead of per split changes no valid position.)"""
    T = max(len(e.inputs) for e in examples)
    x = np.full((len(examples), T), PAD, dtype=np.int64)
    y = np.full((len(examples), T), IGNORE, dtype=np.int64)
    for i, e in enumerate(examples):
        x[i, : len(e.inputs)] = e.inputs
        y[i, : len(e.labels)] = e.labels
    return x, y


def decode(tokens) -> str:
    return " ".join(ITOS[int(t)] for t in tokens)


def statistics(examples: list[Example]) -> dict:
    """The §1.3 table's columns for a split."""
    mins = [minimize(e.dfa) for e in examples]
    return dict(
        tokens_per_seq=float(np.mean([len(e.inputs) for e in examples])),
        states=float(np.mean([m.n_states for m in mins])),
        symbols=float(np.mean([(m.delta >= 0).any(axis=0).sum() for m in mins])),
        edges_per_state=float(np.mean([m.n_edges() / m.n_states for m in mins])),
        strings_per_seq=float(np.mean([e.n_strings for e in examples])),
    )
