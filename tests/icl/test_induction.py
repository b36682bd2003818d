import numpy as np
import pytest
import torch

from memory_mosaics.icl.induction import Bigram, InductionTask, induction_metrics


@pytest.fixture(scope="module")
def shakespeare_bigram():
    from tests.helpers import SHARED_DATA

    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.fail(f"expected the shared corpus at {path}")
    return Bigram.from_text(path.read_text(encoding="utf-8"))


def test_bigram_from_tiny_shakespeare_matches_the_spec(shakespeare_bigram):
    b = shakespeare_bigram
    assert b.vocab_size == 65 and b.itos == sorted(b.itos)
    assert np.allclose(b.transition.sum(1), 1.0) and abs(b.unigram.sum() - 1) < 1e-12
    top5 = [b.itos[i] for i in np.argsort(-b.unigram)[:5]]
    assert top5 == [" ", "e", "t", "o", "a"]
    assert 1300 <= (b.transition > 0).sum() <= 1410  # 1,403 distinct pairs (+ none added: every row non-empty)


def check_sequences(task, x, y, outs):
    B, T = x.shape
    assert np.array_equal(x[:, 1:], y[:, :-1])
    for b in range(B):
        seen, out_of = {}, {}
        for t in range(T):
            tok = int(x[b, t])
            if outs[b, t] > 0:
                seen[tok] = seen.get(tok, 0) + 1
                assert outs[b, t] == seen[tok]
                out_of.setdefault(tok, int(y[b, t]))
                assert y[b, t] == out_of[tok], "a trigger is always followed by its per-sequence output"
            else:
                assert task.bigram.transition[tok, y[b, t]] > 0, "non-trigger steps follow the bigram"


def test_fixed_trigger_sequences_follow_the_generator(shakespeare_bigram):
    task = InductionTask(shakespeare_bigram, n_triggers=5, fixed_triggers=True, seq_len=256)
    x, y, outs = task.sample(64, np.random.default_rng(0))
    assert x.shape == y.shape == outs.shape == (64, 256)
    check_sequences(task, x, y, outs)
    assert set(np.unique(x[outs > 0]).tolist()) <= set(task.fixed.tolist())
    # §2.2 table, K=5 fixed: 68.4% bigram, 1.85% first-occurrence and 29.7% repeat outputs.
    assert abs((outs == 0).mean() - 0.684) < 0.03
    assert abs((outs >= 2).mean() - 0.297) < 0.03
    x2, _, _ = task.sample(64, np.random.default_rng(0))
    assert np.array_equal(x, x2), "deterministic given the generator"


def test_random_trigger_sequences_and_fallback_bigram():
    bigram = Bigram.random(vocab_size=24, support=3, rng=np.random.default_rng(1))
    assert np.allclose(bigram.transition.sum(1), 1) and ((bigram.transition > 0).sum(1) == 3).all()
    task = InductionTask(bigram, n_triggers=3, fixed_triggers=False, seq_len=64)
    x, y, outs = task.sample(32, np.random.default_rng(2))
    check_sequences(task, x, y, outs)
    assert (outs >= 2).any()


def test_metrics_on_perfect_and_bigram_only_predictions():
    bigram = Bigram.random(vocab_size=16, support=2, rng=np.random.default_rng(0))
    task = InductionTask(bigram, n_triggers=2, seq_len=64)
    x, y, outs = (torch.from_numpy(a) for a in task.sample(16, np.random.default_rng(0)))
    perfect = 10.0 * torch.nn.functional.one_hot(y, 16).float()
    m = induction_metrics(perfect, y, outs)
    assert m["accuracy"] == 1.0 and m["acc_tot"] == 1.0 and m["loss_head"] < 1e-3
    # The bigram alone cannot know the per-sequence outputs: acc_end near chance-level of the bigram row.
    bigram_logits = torch.log(torch.from_numpy(bigram.transition)[x] + 1e-9).float()
    assert induction_metrics(bigram_logits, y, outs)["accuracy"] < 0.6


def test_bad_arguments_raise():
    bigram = Bigram.random(vocab_size=8, support=2)
    with pytest.raises(ValueError, match="n_triggers"):
        InductionTask(bigram, n_triggers=8)
    with pytest.raises(ValueError, match="support"):
        Bigram.random(vocab_size=4, support=5)


@pytest.mark.slow
def test_one_layer_memory_mosaic_learns_the_induction_head():
    """The Memory Mosaic claim (§2.4): one layer suffices. ~1 min on one CPU thread."""
    from memory_mosaics.icl.experiment import stream_budget
    from memory_mosaics.icl.models import build_icl_model
    from memory_mosaics.icl.train import train_stream

    task = InductionTask(Bigram.random(32, 4, np.random.default_rng(0)), n_triggers=5, seq_len=64)
    tx, ty, touts = (torch.from_numpy(a) for a in task.sample(128, np.random.default_rng(99)))
    model = build_icl_model("mosaic", n_layer=1, vocab_size=32, block_size=64, dropout=False)
    budget = stream_budget("demo", steps=200)
    res = train_stream(model, lambda rng: task.sample(32, rng)[:2], lambda m: induction_metrics(m(tx), ty, touts),
                       budget, grad_clip=1.0, log=lambda s: None)
    assert res["accuracy"] > 0.95
