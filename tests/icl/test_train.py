import math

import pytest
import torch

from memory_mosaics.icl import regbench as rb
from memory_mosaics.icl.metrics import score_distributions
from memory_mosaics.icl.models import build_icl_model
from memory_mosaics.icl.train import lr_at, regbench_budget, regbench_evaluate, train_regbench


def timm_cosine(step, lr, total, warmup, lr_min, warmup_init=1e-6):
    """timm CosineLRScheduler, warmup_prefix=False, t_initial=total, one cycle (written independently)."""
    if step < warmup:
        return warmup_init + step * (lr - warmup_init) / warmup
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * step / total))


def test_full_budget_is_the_paper_protocol():
    b = regbench_budget("full", 100)
    assert (b.steps, b.warmup, b.lr, b.batch_size, b.dropout) == (800, 80, 5e-4, 32, True)
    assert regbench_budget("full", 1000).steps == 6400 and regbench_budget("full", 2500).steps == 15800
    for step in (0, 1, 40, 79, 80, 81, 400, 799):
        assert abs(lr_at(step, b) - timm_cosine(step, 5e-4, 800, 80, 5e-5)) < 1e-12
    d = regbench_budget("demo", 100, steps=50, lr=1e-3)
    assert (d.steps, d.lr, d.warmup) == (50, 1e-3, 5)
    with pytest.raises(ValueError, match="budget"):
        regbench_budget("huge", 100)


def test_batched_evaluation_matches_per_sequence_scoring():
    """Padding and length-sorted batching must not change the pooled metrics."""
    torch.manual_seed(0)
    data = rb.generate(seed=0, n_train=1, n_test=24)
    model = build_icl_model("mosaic", n_layer=1, dropout=False).eval()
    batched = regbench_evaluate(model, data.test, batch_size=5)
    with torch.no_grad():
        logits = [model(torch.from_numpy(e.inputs)[None])[0] for e in data.test]
    single = score_distributions([torch.softmax(lg, -1).double().numpy() for lg in logits], data.test)
    # Batched and single forwards differ by float32 round-off, so an argmax can flip only where the top two
    # logits are within round-off of each other (1e-5 of the row's largest |logit| bounds it ~100-fold).
    # Accuracy may differ by exactly those positions, no more; they must be rare for the test to mean anything.
    near_ties = 0
    for lg in logits:
        top2 = lg.topk(2, dim=-1).values
        near_ties += int((top2[:, 0] - top2[:, 1] <= 1e-5 * lg.abs().amax(-1)).sum())
    n = batched["positions"]
    assert batched["positions"] == single["positions"] and near_ties <= n // 100
    assert abs(batched["accuracy"] - single["accuracy"]) * n <= near_ties + 1e-9
    assert batched["tvd"] == pytest.approx(single["tvd"], rel=1e-4)


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
def test_training_restores_the_best_validation_state(kind):
    data = rb.generate(seed=0, n_train=8, n_test=8)
    data.train = [e for e in data.train]  # short run: 6 steps of batch 4
    for e in data.train + data.val + data.test:  # truncate sequences to keep the test fast
        e.inputs, e.labels, e.allowed = e.inputs[:60], e.labels[:60], e.allowed[:60]
    budget = regbench_budget("demo", 8, steps=6, lr=3e-3)
    budget.batch_size, budget.eval_every = 4, 2
    model = build_icl_model(kind, n_layer=1, dropout=False)
    logs = []
    res = train_regbench(model, data, budget, seed=0, grad_clip=1.0, log=logs.append)
    assert res["steps"] == 6 and len(res["history"]) == 6 and len(res["evals"]) == 3
    best = min(res["evals"], key=lambda e: e["val_loss"])
    assert res["best_step"] == best["step"]
    assert 0.0 <= res["accuracy"] <= 1.0 and 0.0 <= res["tvd"] <= 1.0
    assert res["history"][-1]["loss"] < res["history"][0]["loss"]
    # The returned model is the best one: its validation loss is the recorded best.
    from memory_mosaics.icl.train import regbench_loss

    assert regbench_loss(model, data.val[: budget.val_subset]) == pytest.approx(best["val_loss"], rel=1e-5)
