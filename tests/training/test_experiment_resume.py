"""ICL and three moons train through the one loop (training/loop.py): checkpoints in the safe format, exact resume
after SIGTERM, one-line errors for bad resume input, never a pickle."""

import json
import os
import pickle
import signal
import time

import pytest
import torch

from memory_mosaics.cli import main
from memory_mosaics.icl import train as icl_train
from memory_mosaics.moons.experiment import load_model
from memory_mosaics.moons.train import MoonsTask
from memory_mosaics.training import TrainingInterrupted
from memory_mosaics.training import checkpoint as ck
from memory_mosaics.training.safe_state import pack

ICL = {
    "regbench": ["icl", "--task", "regbench", "--model", "mosaic", "--layers", "1", "--envs", "4", "--n-test", "6",
                 "--steps", "8", "--no-progress"],
    "mqar": ["icl", "--task", "mqar", "--model", "mosaic", "--seq-len", "16", "--vocab", "40", "--pairs", "2",
             "--test-batch", "8", "--steps", "8", "--no-progress"],
}
MOONS = ["moons", "--heads", "3", "--iters", "6", "--batch", "2", "--block", "30", "--eval-windows", "2",
         "--context-stride", "50", "--checkpoint-every", "4", "--no-progress"]


def sigterm_at_batch(monkeypatch, owner, name, at_call):
    """Send SIGTERM to this process while the loop draws the batch of step `at_call` (1-based)."""
    real, calls = getattr(owner, name), {"n": 0}

    def draw(*args, **kw):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, draw)


def assert_same_state(a, b, step, keys):
    ca, cb = a / f"ckpt-{step:07d}", b / f"ckpt-{step:07d}"
    assert (ca / "model.safetensors").read_bytes() == (cb / "model.safetensors").read_bytes()
    sa, sb = ck.load_state(ca), ck.load_state(cb)
    assert sa["step"] == sb["step"] == step
    for key in ("optimizer", "rng", *keys):
        tree_a, tens_a = pack(sa[key])
        tree_b, tens_b = pack(sb[key])
        assert tree_a == tree_b, key
        assert all(torch.equal(tens_a[k], tens_b[k]) for k in tens_a), key


def one_line_error(capsys, argv, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("task, owner", [("regbench", icl_train.RegBenchTask), ("mqar", icl_train.StreamTask)])
def test_icl_sigterm_then_resume_equals_a_straight_run(tmp_path, monkeypatch, capsys, restore_threads, task, owner):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main([*ICL[task], "--out", str(straight)]) == 0
    sigterm_at_batch(monkeypatch, owner, "batch", at_call=3)
    capsys.readouterr()
    assert main([*ICL[task], "--out", str(run)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped by SIGTERM at step 3" in err[0] and "mosaic icl" in err[0], err
    assert ck.step_of(ck.resolve(run)) == 3 and not (run / "results.json").exists()
    monkeypatch.undo()
    assert main([*ICL[task], "--out", str(run), "--resume"]) == 0
    a, b = (json.loads((p / "results.json").read_text()) for p in (straight, run))
    assert len(a["history"]) == 8 and a["history"] == b["history"] and a["evals"] == b["evals"]
    assert (a["accuracy"], a.get("best_step")) == (b["accuracy"], b.get("best_step"))
    assert_same_state(straight, run, 8, ["data_rng", "history"] + (["order", "best"] if task == "regbench" else []))


def test_moons_sigterm_then_resume_equals_a_straight_run(tmp_path, monkeypatch, capsys):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main([*MOONS, "--out", str(straight)]) == 0
    sigterm_at_batch(monkeypatch, MoonsTask, "loss", at_call=3)  # step 3: not a checkpoint step
    capsys.readouterr()
    assert main([*MOONS, "--out", str(run)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped by SIGTERM at step 3" in err[0], err
    assert [p.name for p in ck.checkpoints(run)] == ["ckpt-0000003"] and not (run / "summary.json").exists()
    monkeypatch.undo()
    assert main([*MOONS, "--out", str(run), "--resume"]) == 0
    a, b = (json.loads((p / "summary.json").read_text()) for p in (straight, run))
    assert a["final_loss"] == b["final_loss"] and a["val"]["error_5"] == b["val"]["error_5"]
    assert [p.name for p in ck.checkpoints(run)] == ["ckpt-0000004", "ckpt-0000006"]
    assert_same_state(straight, run, 6, ["data_rng", "losses"])
    assert len(ck.load_state(run / "ckpt-0000006")["losses"]) == 6


@pytest.mark.parametrize("experiment", ["regbench", "moons"])
def test_signal_during_the_last_step_stops_then_resume_finishes(tmp_path, monkeypatch, capsys, restore_threads,
                                                               experiment):
    """SIGTERM during the last step: exit 143 with the final checkpoint and no results (the evaluation after training
    is skipped, as after any other step); the resume runs no step and writes the results of a straight run."""
    argv, owner, name, steps, file = (
        (ICL["regbench"], icl_train.RegBenchTask, "batch", 8, "results.json") if experiment == "regbench" else
        (MOONS, MoonsTask, "loss", 6, "summary.json"))
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main([*argv, "--out", str(straight)]) == 0
    sigterm_at_batch(monkeypatch, owner, name, at_call=steps)
    capsys.readouterr()
    assert main([*argv, "--out", str(run)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"stopped by SIGTERM at step {steps}, the last of training" in err[0], err
    assert ck.step_of(ck.resolve(run)) == steps and not (run / file).exists()
    monkeypatch.undo()
    assert main([*argv, "--out", str(run), "--resume"]) == 0
    a, b = (json.loads((p / file).read_text()) for p in (straight, run))
    if experiment == "regbench":
        assert a["history"] == b["history"] and (a["accuracy"], a["tvd"]) == (b["accuracy"], b["tvd"])
    else:
        assert a["final_loss"] == b["final_loss"] and a["val"] == b["val"]
    assert_same_state(straight, run, steps, ["data_rng"])


def ticking_clock(monkeypatch, owner, name, seconds):
    """The clock (time.monotonic) advances `seconds` each time the loop draws a batch (owner.name), and only then."""
    now, real = [1e6], getattr(owner, name)

    def draw(*args, **kw):
        now[0] += seconds
        return real(*args, **kw)

    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(owner, name, draw)


def test_stopwatch_counts_no_wall_clock_jump(monkeypatch):
    """Durations come from a monotonic clock: the wall clock set back an hour mid-run (NTP, a manual change)
    does not make the training time negative, and a jump forward adds nothing."""
    from memory_mosaics.training.loop import Stopwatch

    wall, mono = [1e9], [50.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    monkeypatch.setattr(time, "monotonic", lambda: mono[0])
    clock = Stopwatch()
    clock.load_state({"elapsed_s": 30.0})
    wall[0] -= 3600.0
    mono[0] += 5.0
    assert clock.elapsed() == 35.0
    wall[0] += 7200.0
    assert clock.state() == {"elapsed_s": 35.0}


@pytest.mark.parametrize("experiment", ["icl", "moons"])
def test_resumed_run_reports_the_training_time_of_the_whole_run(tmp_path, monkeypatch, capsys, restore_threads,
                                                                experiment):
    """10 s per step: a run stopped by SIGTERM at step 3 and resumed reports the seconds of all its steps (the
    state carries them), as a straight run does; before, only the resumed steps counted."""
    argv, owner, name = ((ICL["mqar"], icl_train.StreamTask, "batch") if experiment == "icl" else
                         (MOONS, MoonsTask, "loss"))
    steps = 8 if experiment == "icl" else 6
    straight, run = tmp_path / "straight", tmp_path / "run"
    ticking_clock(monkeypatch, owner, name, 10.0)
    assert main([*argv, "--out", str(straight)]) == 0
    sigterm_at_batch(monkeypatch, owner, name, at_call=3)
    assert main([*argv, "--out", str(run)]) == 128 + signal.SIGTERM
    assert ck.load_state(ck.resolve(run))["elapsed_s"] == 30.0
    monkeypatch.undo()
    ticking_clock(monkeypatch, owner, name, 10.0)
    assert main([*argv, "--out", str(run), "--resume"]) == 0
    file, key = ("results.json", "train_seconds") if experiment == "icl" else ("summary.json", "train_seconds")
    seconds = [json.loads((p / file).read_text())[key] for p in (straight, run)]
    assert seconds == [10.0 * steps] * 2


def _time_limited_stream(out, resume=None):
    """train_stream of a 1-block model for at most 10 steps or 45 s."""
    import numpy as np

    from memory_mosaics import MemoryMosaic, MosaicConfig

    x = np.random.default_rng(0).integers(0, 16, (2, 8))
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny", vocab_size=16, n_layer=1))
    budget = icl_train.Budget("t", steps=10, lr=1e-3, warmup=1, eval_every=100, val_subset=0, dropout=False,
                              batch_size=2)
    score = lambda m: dict(accuracy=float(sum(p.detach().double().sum() for p in m.parameters())))  # noqa: E731
    resume = ck.resumable(out, need=("model.safetensors",)) if resume else None
    return icl_train.train_stream(model, lambda rng: (x, np.roll(x, -1, 1)), score, budget, time_limit_s=45.0,
                                  log=lambda s: None, out=out, resume=resume)


@pytest.mark.parametrize("stop_at", [3, 5])
def test_stream_time_limit_counts_the_sessions_before_a_resume(tmp_path, monkeypatch, stop_at):
    """A 45 s limit at 10 s per step stops at step 5 of 10 whether or not the run was stopped by SIGTERM and
    resumed: at step 3 (before: the resumed session started its limit afresh and stopped at step 8), or at step 5,
    where the limit ends it (the resume runs no step; before: the signal was ignored there)."""
    ticking_clock(monkeypatch, icl_train.StreamTask, "batch", 10.0)
    straight = _time_limited_stream(tmp_path / "straight")
    assert straight["steps"] == 5
    sigterm_at_batch(monkeypatch, icl_train.StreamTask, "batch", at_call=stop_at)
    with pytest.raises(TrainingInterrupted) as stopped:
        _time_limited_stream(tmp_path / "run")
    assert stopped.value.step == stop_at and stopped.value.last == (stop_at == 5)
    monkeypatch.undo()
    ticking_clock(monkeypatch, icl_train.StreamTask, "batch", 10.0)
    res = _time_limited_stream(tmp_path / "run", resume=True)
    assert res["steps"] == 5 and res["train_seconds"] == 50.0
    assert res["evals"] == straight["evals"] and res["accuracy"] == straight["accuracy"]


def test_icl_and_moons_checkpoints_resume_and_load_without_pickle(tmp_path, monkeypatch, restore_threads):
    icl, moons = tmp_path / "icl", tmp_path / "moons"
    assert main([*ICL["mqar"], "--out", str(icl)]) == 0
    assert main([*MOONS, "--out", str(moons)]) == 0

    def refuse(*args, **kw):
        raise AssertionError("unpickling was attempted")

    for owner, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(owner, name, refuse)
    assert main([*ICL["mqar"], "--out", str(icl), "--resume"]) == 0  # already at its last step: re-scored
    assert main([*MOONS, "--out", str(moons), "--resume"]) == 0
    assert load_model(moons).n_head == 3
    files = {p.name for p in ck.resolve(icl).iterdir()}
    assert {"model.safetensors", "state.safetensors", "state.json", "manifest.json"} <= files
    assert not any(name.endswith((".pt", ".pkl", ".bin")) for name in files)


def test_bad_resume_input_is_one_line(tmp_path, capsys, monkeypatch, restore_threads):
    icl, moons = tmp_path / "icl", tmp_path / "moons"
    one_line_error(capsys, [*ICL["mqar"], "--out", str(icl), "--resume"], "nothing to resume")
    one_line_error(capsys, [*MOONS, "--out", str(moons), "--resume"], "nothing to resume")
    assert main([*ICL["mqar"], "--out", str(icl)]) == 0
    assert main([*MOONS, "--out", str(moons)]) == 0
    one_line_error(capsys, [*ICL["mqar"], "--out", str(icl)], "already holds a run", "--resume")
    one_line_error(capsys, [*MOONS, "--out", str(moons)], "already holds a run", "--resume")
    one_line_error(capsys, [*ICL["mqar"], "--out", str(icl), "--resume", "--lr", "0.5"],
                   "cannot resume into a different config", "lr")
    one_line_error(capsys, [*MOONS, "--out", str(moons), "--resume", "--batch", "3"],
                   "cannot resume into a different config", "batch")
    for run, argv in ((icl, ICL["mqar"]), (moons, MOONS)):
        for ckpt in ck.checkpoints(run):
            (ckpt / "state.json").write_text('{"step": "not a step"}')
        one_line_error(capsys, [*argv, "--out", str(run), "--resume"], "no usable checkpoint")


def test_icl_compare_resume_continues_only_runs_with_a_checkpoint(tmp_path, restore_threads, capsys):
    cmp = ["icl", "--task", "regbench", "--compare", "--layers", "1", "--envs", "4", "--n-test", "6", "--steps",
           "2", "--jobs", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(cmp) == 0
    one_line_error(capsys, cmp, "already holds a run")
    assert main([*cmp, "--resume"]) == 0


def test_backward_only_in_the_training_loop_and_the_speed_bench():
    """One training loop: every `.backward(` of the library lives in training/loop.py (and bench.py, which times it)."""
    from pathlib import Path

    import memory_mosaics

    root = Path(memory_mosaics.__file__).parent
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if ".backward(" in p.read_text())
    assert found == ["bench.py", "training/loop.py"]
