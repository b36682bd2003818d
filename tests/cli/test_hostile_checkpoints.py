"""A crafted pickle payload in any file of a checkpoint never executes: resume, sample, eval, inspect.

The manifest is a checksum, not a signature: an attacker recomputes it, so every file below reaches its loader.
Each payload, if unpickled, would create a marker file (checked to really work in `test_payload_is_live`).
Every command must either ignore the file or refuse it with one line and exit 2 — never run it."""

import hashlib
import io
import json
import pickle
import shutil

import pytest
import torch

from memory_mosaics.cli import main
from tests.helpers import TINY


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def payload_bytes(marker, kind):
    if kind == "pickle":
        return pickle.dumps(Payload(marker))
    buf = io.BytesIO()
    torch.save({"step": 1, "evil": Payload(marker)}, buf)  # what `torch.load(weights_only=False)` would run
    return buf.getvalue()


def rewrite_manifest(ckpt):
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                         for p in sorted(ckpt.iterdir()) if p.name != "manifest.json"}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def plant(run, name, marker, kind="pickle"):
    """Replace `name` (a file of the latest checkpoint, or the run's `latest`) by a payload; fix the manifest."""
    if name == "latest":
        (run / "latest").write_bytes(payload_bytes(marker, kind))
        return
    ckpt = run / (run / "latest").read_text().strip()
    (ckpt / name).write_bytes(payload_bytes(marker, kind))
    if name != "manifest.json":
        rewrite_manifest(ckpt)


def commands(run, text_file, tmp_path):
    return {
        "resume": ["train", "--out", str(run), "--resume", "--max-steps", "5"],
        "sample": ["sample", "--checkpoint", str(run), "--prompt", "A", "--max-new-tokens", "3"],
        "eval": ["eval", "--checkpoint", str(run), "--data", str(text_file), "--batches", "1", "--batch-size", "1",
                 "--context-multiples", "1", "--out", str(tmp_path / "eval")],
        "inspect": ["inspect", "--checkpoint", str(run), "--text", "ROMEO: hi", "--out", str(tmp_path / "inspect")],
    }


def run_safely(capsys, argv, marker):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), f"{argv[0]}: the payload ran"
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return code, err


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, shared_data):
    """One 4-step tiny run, copied fresh for each case."""
    tmp = tmp_path_factory.mktemp("hostile")
    text = tmp / "sh.txt"
    text.write_text((shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20_000])
    run = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSAIC_CACHE", str(tmp / "cache"))
        assert main(["train", "--model", "mosaic", *TINY, "--max-steps", "4", "--data", str(text),
                     "--out", str(run)]) == 0
    return run, text


@pytest.fixture(scope="module")
def shared_data():
    from tests.helpers import SHARED_DATA

    return SHARED_DATA


def test_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(payload_bytes(marker, "pickle"))
    assert marker.exists()  # so a missing marker below really means "never unpickled"
    marker.unlink()
    torch.load(io.BytesIO(payload_bytes(marker, "torch")), weights_only=False)
    assert marker.exists()


FILES = ["model.safetensors", "model_config.json", "tokenizer.json", "train_config.json", "state.safetensors",
         "state.json", "manifest.json", "latest"]
MODEL_FILES = ["model.safetensors", "model_config.json", "tokenizer.json", "manifest.json", "latest"]


@pytest.mark.parametrize("name", FILES)
def test_payload_in_any_file_never_runs(lm_run, tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    src, text_file = lm_run
    marker = tmp_path / "ran"
    for command, argv in commands(tmp_path / "run", text_file, tmp_path).items():
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        shutil.copytree(src, tmp_path / "run")
        plant(tmp_path / "run", name, marker)
        code, err = run_safely(capsys, argv, marker)
        # A file the command reads is refused; others may be ignored (sample needs no optimizer state).
        if command == "resume" and name == "latest":  # the run's checkpoints are intact: resume says so and goes on
            assert code == 0 and "latest is corrupt" in err and "resuming from ckpt-0000004" in err, err
        elif name in (FILES if command == "resume" else MODEL_FILES):
            assert code == 2, (command, name)


def test_legacy_pickled_state_is_refused_not_loaded(lm_run, tmp_path, capsys, monkeypatch):
    """A checkpoint of the old format (state.pt): its model still loads; resuming is refused without unpickling."""
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    src, text_file = lm_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    ckpt = run / (run / "latest").read_text().strip()
    for name in ("state.json", "state.safetensors"):
        (ckpt / name).unlink()
    marker = tmp_path / "ran"
    (ckpt / "state.pt").write_bytes(payload_bytes(marker, "torch"))
    rewrite_manifest(ckpt)
    argv = commands(run, text_file, tmp_path)
    code, err = run_safely(capsys, argv["resume"], marker)
    assert code == 2 and "older mosaic" in err and "never loaded" in err
    for command in ("sample", "eval", "inspect"):
        assert run_safely(capsys, argv[command], marker)[0] == 0, command


MOONS = ["moons", "--heads", "3", "--iters", "2", "--batch", "2", "--eval-windows", "2", "--context-stride", "200"]


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("moons") / "run"
    assert main([*MOONS, "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("name", ["model.safetensors", "model_config.json", "train_config.json", "state.json",
                                  "state.safetensors", "manifest.json", "latest"])
def test_payload_in_a_moons_checkpoint_never_runs(moons_run, tmp_path, capsys, name):
    run, marker = tmp_path / "run", tmp_path / "ran"
    shutil.copytree(moons_run, run)
    plant(run, name, marker)
    code, err = run_safely(capsys, ["inspect", "--checkpoint", str(run), "--out", str(tmp_path / "o")], marker)
    if name in ("model.safetensors", "model_config.json", "manifest.json", "latest"):
        assert code == 2
    code, err = run_safely(capsys, [*MOONS, "--out", str(run), "--resume"], marker)
    # Resuming reads every file but the model's config (the flags give it); a damaged `latest` falls back to the
    # newest intact checkpoint (checkpoint.resumable) and resumes.
    assert code == (0 if name in ("model_config.json", "latest") else 2), err


def test_old_pickled_moons_model_is_refused(moons_run, tmp_path, capsys):
    """A moons run from before (model.pt, a pickle) is refused by name, never loaded."""
    run, marker = tmp_path / "run", tmp_path / "ran"
    run.mkdir()
    shutil.copy(moons_run / "summary.json", run / "summary.json")
    (run / "model.pt").write_bytes(payload_bytes(marker, "torch"))
    code, err = run_safely(capsys, ["inspect", "--checkpoint", str(run), "--out", str(tmp_path / "o")], marker)
    assert code == 2 and "model.pt" in err and "never" in err
    assert not (tmp_path / "o").exists()


def test_well_formed_but_wrong_state_is_one_line(lm_run, tmp_path, capsys, monkeypatch):
    """Valid JSON that is not a training state (keys missing, wrong types): refused with one line."""
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    src, text_file = lm_run
    for state in ({"step": 4}, {"step": 4, "optimizer": [], "scaler": {}, "rng": [], "sampler": 1, "data_key": "x"}):
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(src, run)
        ckpt = run / "ckpt-0000004"
        good = json.loads((ckpt / "state.json").read_text())
        (ckpt / "state.json").write_text(json.dumps({**state, "data_key": good["data_key"]}
                                                    if "optimizer" in state else state))
        rewrite_manifest(ckpt)
        code, err = run_safely(capsys, commands(run, text_file, tmp_path)["resume"], tmp_path / "ran")
        assert code == 2 and "ckpt-0000004" in err, err
