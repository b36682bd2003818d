import numpy as np
import pytest
import torch

from memory_mosaics.icl import regbench as rb
from memory_mosaics.icl.metrics import RegBenchScore, score_distributions
from memory_mosaics.icl.ngram import ngram_probs


@pytest.fixture(scope="module")
def test_split():
    # T = 1000 held-out automata -> 500 test sequences (≈ 185k positions), as in the §1.8 anchors.
    return rb.generate(seed=0, n_train=1, n_test=1000).test


def true_probs(ex):
    return ex.allowed / ex.allowed.sum(1, keepdims=True)


def test_true_pfa_scores_perfectly_and_wrong_tokens_score_zero():
    data = rb.generate(seed=1, n_train=1, n_test=20)
    r = score_distributions([true_probs(e) for e in data.test], data.test)
    assert r["accuracy"] == 1.0 and r["acc_c"] == 1.0 and r["tvd"] < 1e-12
    sep = [np.eye(rb.VOCAB_SIZE)[np.full(len(e.inputs), rb.SEP)] for e in data.test]
    r = score_distributions(sep, data.test)
    assert r["accuracy"] == 0.0 and abs(r["tvd"] - 1.0) < 1e-12 and abs(r["l1"] - 2.0) < 1e-12


def test_hand_computed_tvd_and_accuracy():
    score = RegBenchScore()
    allowed = torch.zeros(2, rb.VOCAB_SIZE, dtype=torch.bool)
    allowed[0, [1, 2]] = True  # p_true = (½, ½) on a, b
    allowed[1, 3] = True  # p_true = 1 on c
    probs = torch.zeros(2, rb.VOCAB_SIZE, dtype=torch.float64)
    probs[0, 1], probs[0, 19] = 0.8, 0.2  # argmax a: legal; TVD ½(0.3 + 0.5 + 0.2) = 0.5
    probs[1, 4] = 1.0  # argmax d: illegal; TVD 1
    score.update(probs, allowed, torch.tensor([False, True]))
    r = score.result()
    assert r["accuracy"] == 0.5 and r["acc_c"] == 1.0  # acc (c) skips the second position
    assert abs(r["tvd"] - 0.75) < 1e-12 and abs(r["l1"] - 1.5) < 1e-12


def test_uniform_over_letters_matches_the_anchor(test_split):
    uniform = [np.tile(np.r_[0.0, np.full(18, 1 / 18), 0.0], (len(e.inputs), 1)) for e in test_split]
    r = score_distributions(uniform, test_split)
    assert abs(r["tvd"] - 0.891) < 0.02, r  # §1.8; accuracy depends on argmax tie-breaking, so not checked


@pytest.mark.parametrize("order, acc, tvd", [(1, 0.472, 0.633), (2, 0.830, 0.279), (3, 0.937, 0.196)])
def test_in_context_ngrams_land_near_the_published_anchors(test_split, order, acc, tvd):
    """§1.8 anchors from the official generator's test split; a clean-room generator lands close."""
    r = score_distributions([ngram_probs(e.inputs, order) for e in test_split], test_split)
    assert abs(r["accuracy"] - acc) < 0.02, r
    assert abs(r["tvd"] - tvd) < 0.02, r
    assert abs(r["acc_c"] - r["accuracy"]) < 0.002  # the two accuracies differ by < 0.001 officially


def test_ngram_rows_are_distributions_over_letters_seen_in_context():
    ex = rb.generate(seed=2, n_train=1, n_test=2).train[0]
    for order in (1, 2, 3):
        p = ngram_probs(ex.inputs, order)
        assert np.allclose(p.sum(1), 1.0)
        assert (p[:, [rb.PAD, rb.SEP]] == 0).all()
        for j in range(len(ex.inputs)):  # support ⊆ letters already seen in the sequence
            seen = np.unique(ex.inputs[: j + 1][ex.inputs[: j + 1] != rb.SEP])
            assert set(np.flatnonzero(p[j])) <= set(seen.tolist())
    with pytest.raises(ValueError, match="order"):
        ngram_probs(ex.inputs, 4)
