import numpy as np
import pytest

from memory_mosaics.icl import regbench as rb


def equivalent(d1: rb.DFA, d2: rb.DFA, s1: int = 0, s2: int = 0) -> bool:
    """Exact language equality from (s1, s2): BFS over the product; all states accept, so two states differ
    iff some reachable pair disagrees on which symbols are defined."""
    seen, stack = {(s1, s2)}, [(s1, s2)]
    while stack:
        p, q = stack.pop()
        if not np.array_equal(d1.delta[p] >= 0, d2.delta[q] >= 0):
            return False
        for a in np.flatnonzero(d1.delta[p] >= 0):
            nxt = (int(d1.delta[p, a]), int(d2.delta[q, a]))
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return True


def random_dfas(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rb.sample_dfa(rng) for _ in range(n)]


def test_sampled_dfa_respects_the_spec():
    for d in random_dfas(200):
        assert rb.MIN_STATES <= d.n_states <= rb.MAX_STATES
        for s in range(d.n_states):
            targets = d.delta[s][d.delta[s] >= 0]
            assert 1 <= len(targets) <= 3
            assert s not in targets, "no self-loops"
            assert len(set(targets.tolist())) == len(targets), "distinct targets"


def test_minimisation_preserves_the_language_and_is_minimal():
    for d in random_dfas(150, seed=1):
        m = rb.minimize(d)
        assert m.n_states <= d.n_states
        assert equivalent(d, m)
        # Minimal: no two distinct states accept the same language.
        for p in range(m.n_states):
            for q in range(p + 1, m.n_states):
                assert not equivalent(m, m, p, q)
        # Random walks on the original (accepted) and single-symbol mutations (maybe rejected) agree.
        rng = np.random.default_rng(0)
        for _ in range(20):
            s, word = 0, []
            for _ in range(rng.integers(1, 12)):
                a = int(rng.choice(d.out_symbols(s)))
                word.append(a)
                s = int(d.delta[s, a])
            assert d.accepts(word) and m.accepts(word)
            word[rng.integers(len(word))] = int(rng.integers(rb.N_LETTERS))
            assert d.accepts(word) == m.accepts(word)


def test_minimisation_is_canonical():
    """Relabelling the states (start kept at 0) or minimising twice gives the identical DFA."""
    rng = np.random.default_rng(2)
    for d in random_dfas(50, seed=2):
        m = rb.minimize(d)
        perm = np.concatenate([[0], 1 + rng.permutation(d.n_states - 1)])  # old state i -> new perm[i]
        delta = np.full_like(d.delta, -1)
        delta[perm] = np.where(d.delta >= 0, perm[np.maximum(d.delta, 0)], -1)
        assert np.array_equal(rb.minimize(rb.DFA(delta)).delta, m.delta)
        assert np.array_equal(rb.minimize(m).delta, m.delta)


def test_minimisation_merges_equivalent_states_and_trims():
    # 0 -a-> 1, 0 -b-> 2, 1 -c-> 0, 2 -c-> 0 ; 1 and 2 are equivalent; state 3 is unreachable.
    delta = np.full((4, rb.N_LETTERS), -1)
    delta[0, 0], delta[0, 1], delta[1, 2], delta[2, 2], delta[3, 0] = 1, 2, 0, 0, 0
    m = rb.minimize(rb.DFA(delta))
    assert m.n_states == 2
    assert equivalent(rb.DFA(delta), m)


def test_every_generated_string_is_accepted_and_shapes_are_consistent():
    data = rb.generate(seed=5, n_train=40, n_test=20)
    for ex in data.train + data.test + data.val:
        tokens = np.concatenate([ex.inputs, ex.labels[-1:]])
        assert tokens[0] != rb.SEP and tokens[-1] != rb.SEP, "no separator at either end"
        strings = np.split(tokens, np.flatnonzero(tokens == rb.SEP))
        strings = [s[s != rb.SEP] for s in strings]
        assert rb.MIN_STRINGS <= len(strings) <= rb.MAX_STRINGS
        for s in strings:
            assert 1 <= len(s) <= rb.MAX_STRING_LEN
            assert ex.dfa.accepts(s - 1)
        # Labels: next tokens with separators masked.
        assert np.array_equal(ex.labels, np.where(tokens[1:] == rb.SEP, rb.IGNORE, tokens[1:]))
        # The observed next letter is always legal under p_DFA; "|" and "." never are.
        letters = ex.labels >= 0
        assert ex.allowed[np.flatnonzero(letters), ex.labels[letters]].all()
        assert not ex.allowed[:, [rb.PAD, rb.SEP]].any()
        assert ex.allowed.any(1).all()


def test_generator_is_a_pure_function_of_the_seed():
    a, b = rb.generate(seed=3, n_train=10, n_test=10), rb.generate(seed=3, n_train=10, n_test=10)
    for x, y in zip(a.train + a.test + a.val, b.train + b.test + b.val):
        assert np.array_equal(x.inputs, y.inputs) and np.array_equal(x.dfa.delta, y.dfa.delta)
    c = rb.generate(seed=4, n_train=10, n_test=10)
    assert not all(np.array_equal(x.inputs, y.inputs) for x, y in zip(a.train, c.train))
    # Held-out automata do not depend on N; N=10 training set is a prefix of N=20.
    d = rb.generate(seed=3, n_train=20, n_test=10)
    assert all(np.array_equal(x.inputs, y.inputs) for x, y in zip(a.test, d.test))
    assert all(np.array_equal(x.inputs, y.inputs) for x, y in zip(a.train, d.train[:10]))
    assert (len(a.train), len(a.test), len(a.val)) == (10, 5, 5)


def test_statistics_match_the_official_generator():
    """§1.3 table (official, N=100..40000): states ≈ 6.9, edges/state ≈ 2.0, tokens/seq ≈ 377, strings ≈ 14.5."""
    data = rb.generate(seed=0, n_train=600, n_test=2)
    st = rb.statistics(data.train)
    assert abs(st["states"] - 6.95) < 0.35, st
    assert abs(st["edges_per_state"] - 2.0) < 0.12, st
    assert abs(st["tokens_per_seq"] - 377) < 15, st
    assert abs(st["strings_per_seq"] - 14.5) < 0.5, st
    assert abs(st["symbols"] - 7.45) < 0.5, st


def test_collate_pads_inputs_and_masks_labels():
    data = rb.generate(seed=0, n_train=4, n_test=2)
    x, y = rb.collate(data.train)
    for i, ex in enumerate(data.train):
        n = len(ex.inputs)
        assert np.array_equal(x[i, :n], ex.inputs) and (x[i, n:] == rb.PAD).all()
        assert np.array_equal(y[i, :n], ex.labels) and (y[i, n:] == rb.IGNORE).all()


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n_train"):
        rb.generate(seed=0, n_train=0)
