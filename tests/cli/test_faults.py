"""Faults of the environment and nonsense values: one line on stderr, exit 2, no traceback, nothing lost."""

import errno
import json
import math
import os
from pathlib import Path

import pytest

from memory_mosaics.cli import main
from memory_mosaics.jsonsafe import dumps
from memory_mosaics.training import checkpoint as ck
from tests.helpers import TINY, one_line_error


def train_argv(text_file, out, *extra):
    return ["train", *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(out), *extra]


def test_read_only_output_folder(capsys, text_file, tmp_path, monkeypatch):
    # Tests may run as root, which ignores permission bits: the check is what sees a read-only folder.
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    one_line_error(capsys, train_argv(text_file, ro), "cannot write to --out")
    one_line_error(capsys, train_argv(text_file, ro / "new" / "run"), f"cannot create --out {ro}/new/run: {ro} "
                                                                       "is not writable")
    assert list(ro.iterdir()) == []


def test_output_folder_cannot_be_created(capsys, text_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(capsys, train_argv(text_file, tmp_path / "afile" / "run"), "is not a directory")


def fail_path_method(monkeypatch, method: str, name: str, code: int, message: str) -> None:
    """Make `Path.<method>` raise OSError(code) for paths called `name`; other paths work as usual."""
    real = getattr(Path, method)

    def fail(self, *a, **kw):
        if self.name == name:
            raise OSError(code, message, str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, method, fail)


def test_output_folder_creation_fails(capsys, text_file, tmp_path, monkeypatch):
    fail_path_method(monkeypatch, "mkdir", "run", errno.EROFS, "Read-only file system")
    one_line_error(capsys, train_argv(text_file, tmp_path / "run"), "cannot create --out")


def test_full_disk_while_writing_a_checkpoint(capsys, text_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = ck._write_synced
    calls = {"n": 0}

    def full_disk(path, data):
        calls["n"] += 1
        if calls["n"] > 7:  # the first checkpoint (7 files) fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ck, "_write_synced", full_disk)
    one_line_error(capsys, train_argv(text_file, out, "--max-steps", "8"),
                   "cannot write checkpoint ckpt-0000008")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".", "ckpt"))) == ["ckpt-0000004"]
    ck.verify(ck.resolve(out), need=ck.FILES)  # the last good checkpoint is intact and named by `latest`


def test_full_disk_while_writing_the_summary(capsys, text_file, tmp_path, monkeypatch):
    fail_path_method(monkeypatch, "write_text", "summary.json", errno.ENOSPC, "No space left on device")
    one_line_error(capsys, train_argv(text_file, tmp_path / "run"), "No space left on device")


@pytest.mark.parametrize("extra, match", [
    (["--threads", "-1"], "--threads must be ≥ 1"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "1e-3", "--min-lr", "1e-2"], "--min-lr must be in [0, --lr"),
    (["--min-lr=-1e-5"], "--min-lr must be in [0, --lr"),
    (["--weight-decay", "-0.1"], "--weight-decay must be ≥ 0"),
    (["--grad-clip", "-1"], "--grad-clip must be ≥ 0"),
    (["--eval-interval", "0"], "--eval-interval must be ≥ 1"),
    (["--log-interval", "-3"], "--log-interval must be ≥ 1"),
    (["--checkpoint-interval", "0"], "--checkpoint-interval must be ≥ 1"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints must be ≥ 1"),
    (["--lr-decay-steps", "0"], "--lr-decay-steps must be ≥ 1"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be ≥ 1"),
    (["--beta2", "1.0"], "--beta2 must be in [0, 1)"),
])
def test_train_refuses_nonsense(capsys, text_file, tmp_path, extra, match):
    one_line_error(capsys, train_argv(text_file, tmp_path / "run", *extra), match)
    assert not (tmp_path / "run").exists()  # nothing written for a failed start


def test_eval_and_sample_refuse_nonsense(capsys, trained, text_file):
    ev = ["eval", "--checkpoint", str(trained), "--data", str(text_file)]
    one_line_error(capsys, ev + ["--batches", "0"], "--batches must be ≥ 1, got 0")
    one_line_error(capsys, ev + ["--batch-size", "0"], "--batch-size must be ≥ 1, got 0")
    one_line_error(capsys, ev + ["--context-multiples", "1", "0"], "--context-multiples must be positive integers")
    one_line_error(capsys, ev + ["--device", "tpu"], "unknown device 'tpu'")
    sample = ["sample", "--checkpoint", str(trained), "--prompt", "A"]
    one_line_error(capsys, sample + ["--temperature", "-1"], "--temperature must be a finite number ≥ 0")
    one_line_error(capsys, sample + ["--temperature", "nan"], "--temperature must be a finite number ≥ 0")
    one_line_error(capsys, sample + ["--top-k", "0"], "--top-k must be ≥ 1")
    one_line_error(capsys, sample + ["--max-new-tokens", "-1"], "--max-new-tokens must be ≥ 0")
    one_line_error(capsys, sample + ["--num-samples", "0"], "--num-samples must be ≥ 1")
    one_line_error(capsys, sample + ["--device", "tpu"], "unknown device 'tpu'")
    assert not (trained / "eval").exists()


def test_bench_refuses_bad_threads_and_device(capsys):
    one_line_error(capsys, ["bench", "--quick", "--threads", "-1"], "--threads must be ≥ 1")
    one_line_error(capsys, ["bench", "--quick", "--device", "tpu"], "unknown device 'tpu'")


def test_json_stays_json():
    assert dumps({"a": float("nan"), "b": [float("inf"), 1.5], "c": (float("-inf"),)}) == \
        '{"a": null, "b": [null, 1.5], "c": [null]}'
    with pytest.raises(TypeError):
        dumps({"x": object()})


def strict_json(text):
    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=no_constants)


def test_eval_and_summary_write_strict_json(capsys, trained, text_file):
    summary = strict_json((trained / "summary.json").read_text())
    assert math.isfinite(summary["val_loss"])
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained), "--data", str(text_file), "--batches", "1",
                 "--batch-size", "1", "--context-multiples", "1"]) == 0
    assert math.isfinite(strict_json(capsys.readouterr().out)["loss"])


@pytest.mark.parametrize("task", ["regbench", "induction"])
def test_icl_refuses_non_finite_lr(capsys, tmp_path, task):
    one_line_error(capsys, ["icl", "--task", task, "--model", "mosaic", "--lr", "inf", "--out", str(tmp_path / "o")],
                   "--lr must be a finite number > 0")
