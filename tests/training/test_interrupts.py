"""SIGINT / SIGTERM: a checkpoint at the next step boundary, then exit; resuming from it is bit-exact.
A resumed run that is already finished changes nothing; a corrupt newest checkpoint falls back to an older one."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from memory_mosaics.cli import main
from memory_mosaics.training import TrainConfig, train
from memory_mosaics.training import checkpoint as ck
from memory_mosaics.training import trainer as trainer_mod
from memory_mosaics.training.metrics import read_metrics
from memory_mosaics.training.safe_state import pack
from tests.helpers import TINY, tiny_args


def tree_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_run(a, b, step):
    """Same losses at every step, and bit-identical weights and optimizer/RNG state at `step`."""
    la = [r["train_loss"] for r in read_metrics(a / "metrics.csv")]
    lb = [r["train_loss"] for r in read_metrics(b / "metrics.csv")]
    assert len(la) == step and la == lb
    ca, cb = a / f"ckpt-{step:07d}", b / f"ckpt-{step:07d}"
    assert (ca / "model.safetensors").read_bytes() == (cb / "model.safetensors").read_bytes()
    sa, sb = ck.load_state(ca), ck.load_state(cb)
    assert sa["step"] == sb["step"] == step
    for key in ("optimizer", "rng", "sampler"):
        tree_a, tens_a = pack(sa[key])
        tree_b, tens_b = pack(sb[key])
        assert tree_a == tree_b, key
        assert all(torch.equal(tens_a[k], tens_b[k]) for k in tens_a), key


def signal_during_step(monkeypatch, signum, at_call):
    """Send `signum` to this process while the loop draws the batch of step `at_call` (1-based)."""
    real = trainer_mod.windows_at
    calls = {"n": 0}

    def windows_at(*args, **kw):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signum)
        return real(*args, **kw)

    monkeypatch.setattr(trainer_mod, "windows_at", windows_at)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_at_the_step_boundary_and_resume_is_exact(text_file, tmp_path, monkeypatch, capsys,
                                                                       signum, code):
    straight = tmp_path / "straight"
    train(TrainConfig(**tiny_args(text_file, straight, max_steps=7, eval_interval=100)))
    run = tmp_path / "run"
    argv = ["train", *TINY, "--max-steps", "7", "--eval-interval", "100", "--lr", "1e-2", "--data", str(text_file),
            "--out", str(run)]
    signal_during_step(monkeypatch, signum, at_call=3)
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"stopped by {signal.Signals(signum).name} at step 3" in err[0], err
    assert [p.name for p in ck.checkpoints(run)] == ["ckpt-0000003"] and not (run / "summary.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert_same_run(straight, run, 7)


def test_signal_during_the_last_step_stops_with_the_interrupted_status(text_file, tmp_path, monkeypatch, capsys):
    """A signal seen at the last step is acted on like any other (exit 143, not 0): the final checkpoint, and the
    summary (training is complete), are written; a resume has nothing left to do; the run equals a straight one."""
    straight = tmp_path / "straight"
    train(TrainConfig(**tiny_args(text_file, straight, max_steps=5, eval_interval=100)))
    run = tmp_path / "run"
    argv = ["train", *TINY, "--max-steps", "5", "--eval-interval", "100", "--lr", "1e-2", "--data", str(text_file),
            "--out", str(run)]
    signal_during_step(monkeypatch, signal.SIGTERM, at_call=5)
    capsys.readouterr()
    assert main(argv) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped by SIGTERM at step 5, the last of training" in err[0], err
    assert [p.name for p in ck.checkpoints(run)] == ["ckpt-0000005"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 5 and summary["val_loss"] == json.loads((straight / "summary.json").read_text())["val_loss"]
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert_same_run(straight, run, 5)


def test_sigterm_to_a_real_process(text_file, tmp_path):
    """A `mosaic train` process gets SIGTERM as a scheduler sends it: exit 143 with a checkpoint, exact resume."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [*TINY, "--lr", "1e-2", "--eval-interval", "100000", "--data", str(text_file)]
    proc = subprocess.Popen([sys.executable, "-m", "memory_mosaics.cli", "train", *common, "--max-steps", "100000",
                             "--lr-decay-steps", "50", "--out", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (
                (run / "metrics.csv").is_file() and len((run / "metrics.csv").read_text().splitlines()) >= 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    (stopped,) = ck.checkpoints(run)
    k = ck.step_of(stopped)
    assert k >= 2
    assert main(["train", "--out", str(run), "--resume", "--max-steps", str(k + 2)]) == 0
    straight = tmp_path / "straight"
    assert main(["train", *common, "--max-steps", str(k + 2), "--lr-decay-steps", "50", "--out", str(straight)]) == 0
    assert_same_run(straight, run, k + 2)


def test_resuming_a_finished_run_changes_nothing(trained, capsys):
    before = tree_digest(trained)
    capsys.readouterr()
    assert main(["train", "--out", str(trained), "--resume"]) == 0  # already at its --max-steps 4
    assert "nothing to do" in capsys.readouterr().err
    assert main(["train", "--out", str(trained), "--resume", "--max-steps", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "past --max-steps 3" in err
    assert tree_digest(trained) == before  # summary.json, metrics.csv, checkpoints: byte for byte


def test_corrupt_newest_checkpoint_falls_back(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", *TINY, "--lr", "1e-2", "--data", str(text_file)]
    assert main(base + ["--max-steps", "8", "--keep-checkpoints", "2", "--out", str(run)]) == 0  # ckpt 4 and 8
    newest = run / "ckpt-0000008" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-16] + b"\0" * 16)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--max-steps", "10"]) == 0
    err = capsys.readouterr().err
    assert "ckpt-0000008" in err and "resuming from ckpt-0000004" in err
    assert [r["step"] for r in read_metrics(run / "metrics.csv")] == list(range(1, 11))
    assert [p.name for p in ck.checkpoints(run)] == ["ckpt-0000008", "ckpt-0000010"]  # 8 rewritten, intact
    ck.verify(run / "ckpt-0000008", need=ck.FILES)
    # The same as a run that never saw the damage.
    straight = tmp_path / "straight"
    assert main(base + ["--max-steps", "10", "--lr-decay-steps", "8", "--out", str(straight)]) == 0
    assert_same_run(straight, run, 10)
