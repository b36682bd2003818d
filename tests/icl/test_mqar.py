import numpy as np
import pytest
import torch

from memory_mosaics.icl.mqar import IGNORE, mqar_accuracy, mqar_batch


def test_mqar_layout():
    L, D, V = 64, 4, 128
    x, y = mqar_batch(50, L, D, V, np.random.default_rng(0))
    assert x.shape == y.shape == (50, L)
    for b in range(50):
        keys, vals = x[b, 0 : 2 * D : 2], x[b, 1 : 2 * D : 2]
        assert len(set(keys)) == D and len(set(vals)) == D
        assert ((1 <= keys) & (keys < V // 2)).all() and ((V // 2 <= vals) & (vals < V)).all()
        q = np.flatnonzero(y[b] != IGNORE)
        assert len(q) == D and (q >= 2 * D).all() and (q % 2 == 0).all()
        assert sorted(x[b, q]) == sorted(keys), "every key is queried exactly once"
        lookup = dict(zip(keys, vals))
        assert all(y[b, p] == lookup[x[b, p]] for p in q)
        filler = np.ones(L, bool)
        filler[: 2 * D] = False
        filler[q] = False
        assert (x[b, filler] == 0).all()


def test_queries_favour_early_slots():
    x, y = mqar_batch(400, 256, 4, 512, np.random.default_rng(1))
    pos = np.flatnonzero((y != IGNORE).ravel()) % 256
    assert np.median(pos) < 8 + (256 - 8) / 2  # power law (g+1)^(a-1) puts more mass near the context


def test_accuracy_is_per_example_then_mean():
    x, y = mqar_batch(2, 16, 2, 32, np.random.default_rng(0))
    y, logits = torch.from_numpy(y), torch.zeros(2, 16, 32)
    q = (y != IGNORE).nonzero()
    b0 = q[q[:, 0] == 0][0]  # one of example 0's two queries right, all of example 1's
    logits[b0[0], b0[1], y[b0[0], b0[1]]] = 1.0
    for b, t in q[q[:, 0] == 1]:
        logits[b, t, y[b, t]] = 1.0
    assert abs(mqar_accuracy(logits, y) - 0.75) < 1e-6


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="MQAR"):
        mqar_batch(1, 64, 20, 128, np.random.default_rng(0))
    with pytest.raises(ValueError, match="MQAR"):
        mqar_batch(1, 64, 4, 64, np.random.default_rng(0))
