"""torchrun + gloo on CPU: 2 processes × 4 sequences train exactly like 1 process × 8 (same global batch).
~15 s each (two interpreter start-ups); the FSDP variant is marked slow."""

import pytest

from memory_mosaics.training import TrainConfig, train
from memory_mosaics.training.metrics import read_metrics
from tests.helpers import run_torchrun, tiny_args

ARGS = ["--model", "mosaic", "--preset", "tiny", "--batch-size", "8", "--max-steps", "6", "--warmup-steps", "2",
        "--lr", "1e-2", "--eval-interval", "3", "--eval-batches", "2", "--log-interval", "1", "--no-progress",
        "--threads", "1"]


def torchrun(n, data, out, *extra):
    run_torchrun(n, ["train", *ARGS, "--data", str(data), "--out", str(out), *extra])


def trajectory(out):
    rows = read_metrics(out / "metrics.csv")
    return [r["train_loss"] for r in rows], [r["val_loss"] for r in rows if r["val_loss"] is not None]


@pytest.mark.parametrize("fsdp", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["ddp", "fsdp"])
def test_two_processes_match_one(text_file, tmp_path, fsdp):
    train(TrainConfig(**tiny_args(text_file, tmp_path / "one", batch_size=8, max_steps=6, eval_interval=3)))
    torchrun(2, text_file, tmp_path / "two", *(["--fsdp"] if fsdp else []))
    one, two = trajectory(tmp_path / "one"), trajectory(tmp_path / "two")
    assert len(two[0]) == 6
    assert two[0] == pytest.approx(one[0], rel=1e-4)  # float reduction order differs, nothing else
    assert two[1] == pytest.approx(one[1], rel=1e-4)
    # The 2-process checkpoint resumes in one process.
    train(TrainConfig(**{**tiny_args(text_file, tmp_path / "two", batch_size=8, max_steps=8, eval_interval=3,
                                     lr_decay_steps=6), "resume": True}))
    assert len(trajectory(tmp_path / "two")[0]) == 8


def test_setup_plain_cuda_gets_an_index(monkeypatch):
    """`--device cuda` on one GPU: torch.cuda.set_device needs an index (torch 2.11 refuses a bare "cuda"), so setup
    resolves it to the current device (found on an H100: every CUDA run failed before this)."""
    import torch

    from memory_mosaics.training import distributed as D

    calls = []

    def set_device(dev):
        if isinstance(dev, torch.device) and dev.index is None:
            raise ValueError("Expected a torch.device with a specified index or an integer, but got:cuda")
        calls.append(dev)

    monkeypatch.setattr(D, "parse_device", lambda name: torch.device(name))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    info, dev = D.setup("cuda")
    assert dev == torch.device("cuda", 0) and calls == [torch.device("cuda", 0)]
    assert not info.enabled
