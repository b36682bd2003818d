"""ICL and three moons under torchrun + gloo on CPU: 2 processes × half the batch train like 1 process × the whole
batch (same global batch, same seed), up to the all-reduce's round-off; only process 0 writes. The torchrun runs
are slow (two interpreter start-ups each); the one-line refusals are checked in-process."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from memory_mosaics.cli import main
from memory_mosaics.training import checkpoint as ck
from tests.helpers import assert_close, one_line_error, run_torchrun

CPU = ["--device", "cpu", "--threads", "1", "--no-progress"]
ICL = {  # regbench: 4 training automata, so every batch is 4 sequences of different label counts
    "regbench": ["icl", "--task", "regbench", "--model", "mosaic", "--layers", "1", "--envs", "4", "--n-test", "6",
                 "--steps", "4", *CPU],
    "mqar": ["icl", "--task", "mqar", "--model", "mosaic", "--seq-len", "16", "--vocab", "40", "--pairs", "2",
             "--test-batch", "8", "--steps", "4", *CPU],
}
MOONS = ["moons", "--heads", "3", "--iters", "4", "--batch", "4", "--block", "30", "--eval-windows", "2",
         "--context-stride", "50", "--checkpoint-every", "2", *CPU]


def with_flag(argv, flag, value):
    i = argv.index(flag)
    return [*argv[:i + 1], value, *argv[i + 2:]]


def assert_same_weights(one, two):
    a, b = (load_file(ck.resolve(run) / "model.safetensors") for run in (one, two))
    assert a.keys() == b.keys()
    for name in a:
        assert_close(b[name], a[name], rtol=1e-4, what=name)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(ICL))
def test_icl_two_processes_match_one(tmp_path, restore_threads, task):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*ICL[task], "--out", str(one)]) == 0
    out, _ = run_torchrun(2, [*ICL[task], "--out", str(two)])
    assert out.count("test accuracy") == 1  # process 0 alone logs
    r1, r2 = (json.loads((run / "results.json").read_text()) for run in (one, two))
    assert r2["processes"] == 2 and len(r2["history"]) == 4
    assert [h["loss"] for h in r2["history"]] == pytest.approx([h["loss"] for h in r1["history"]], rel=1e-4)
    assert_same_weights(one, two)


@pytest.mark.slow
def test_moons_two_processes_match_one(tmp_path, restore_threads):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*MOONS, "--out", str(one)]) == 0
    run_torchrun(2, [*MOONS, "--out", str(two)])
    s1, s2 = (json.loads((run / "summary.json").read_text()) for run in (one, two))
    assert s2["final_loss"] == pytest.approx(s1["final_loss"], rel=1e-4)
    l1, l2 = (ck.load_state(ck.resolve(run))["losses"] for run in (one, two))
    assert len(l2) == 4 and l2 == pytest.approx(l1, rel=1e-4)
    assert_same_weights(one, two)
    # Its checkpoint of iteration 2 resumes in one process, and ends where the 1-process run did.
    shutil.rmtree(two / "ckpt-0000004")
    assert main([*MOONS, "--out", str(two), "--resume"]) == 0
    assert len(ck.load_state(ck.resolve(two))["losses"]) == 4
    assert_same_weights(one, two)


def test_torchrun_refusals_are_one_line(tmp_path, capsys, monkeypatch, restore_threads):
    """What cannot run under torchrun says so before any process waits for the others (WORLD_SIZE alone)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    one_line_error(capsys, ["moons", "--compare", "--out", str(tmp_path / "m")], "one process")
    one_line_error(capsys, [*with_flag(MOONS, "--batch", "3"), "--out", str(tmp_path / "m")], "divisible by the 2")
    one_line_error(capsys, ["icl", "--task", "mqar", "--compare", "--out", str(tmp_path / "i")],
                   "processes of its own")
    monkeypatch.setenv("WORLD_SIZE", "3")  # the ICL batch is 32
    one_line_error(capsys, [*ICL["mqar"], "--out", str(tmp_path / "i")], "divisible by the 3")
    assert not (tmp_path / "m").exists() and not (tmp_path / "i").exists()


def slice_gradients(make_task, world):
    """The loss and gradients of process r of `world` for each r, computed in this process (no process group):
    every task draws the same global batch from its own seeded stream. Also the batch rows each one saw."""
    from memory_mosaics.training.distributed import DistInfo

    results = []
    for rank in range(world):
        task = make_task(DistInfo(rank, world))
        rows = []
        hook = task.model.register_forward_pre_hook(lambda m, args, rows=rows: rows.append(args[0].shape[0]))
        loss = task.loss(task.model, 0)
        loss.backward()
        hook.remove()
        results.append((loss.item(), {n: p.grad.clone() for n, p in task.model.named_parameters()}, rows))
    return results


@pytest.mark.parametrize("experiment", ["regbench", "moons"])
def test_slices_average_to_the_global_batch(experiment):
    """What DDP averages over 2 processes equals the 1-process loss and gradient — with halves of the batch, and
    (RegBench) a different number of labels in each half."""
    import copy

    import torch

    from memory_mosaics.icl import regbench
    from memory_mosaics.icl.models import build_icl_model
    from memory_mosaics.icl.train import RegBenchTask, regbench_budget
    from memory_mosaics.moons.train import MoonsTask

    if experiment == "regbench":
        data = regbench.generate(seed=0, n_train=8, n_test=2)
        budget = regbench_budget("demo", 8, steps=2, batch_size=8)
        torch.manual_seed(0)
        model = build_icl_model("mosaic", n_layer=1, dropout=False).double()

        def make_task(info):
            return RegBenchTask(copy.deepcopy(model), data, budget, 0, "cpu", None, info=info)

        labels = [(torch.from_numpy(y) != -100).sum().item() for y in
                  (regbench.collate([data.train[i] for i in make_task(None).order[:8]])[1][h * 4:(h + 1) * 4]
                   for h in (0, 1))]
        assert labels[0] != labels[1]  # the case a plain mean per process would get wrong
    else:
        def make_task(info):
            return MoonsTask(3, 100, 4, 4, 30, None, 1, False, "cpu", None, info=info)  # float32 data

    rtol = 1e-9 if experiment == "regbench" else 1e-5  # float64 / float32
    (one_loss, one_grad, one_rows), = slice_gradients(make_task, 1)
    two = slice_gradients(make_task, 2)
    assert [r[2] for r in two] == [[one_rows[0] // 2]] * 2
    assert sum(r[0] for r in two) / 2 == pytest.approx(one_loss, rel=rtol)
    for name, g in one_grad.items():
        assert_close((two[0][1][name] + two[1][1][name]) / 2, g, rtol=rtol, what=name)
