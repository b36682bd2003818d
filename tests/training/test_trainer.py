import json

import pytest
import torch

from memory_mosaics.config import ConfigError, MosaicConfig
from memory_mosaics.training import TrainConfig, load_model, train
from memory_mosaics.training.config import merge_for_resume
from memory_mosaics.training.metrics import read_metrics
from tests.helpers import TINY, tiny_args


def losses(out):
    return [r["train_loss"] for r in read_metrics(out / "metrics.csv")]


@pytest.mark.parametrize("model", ["mosaic", "transformer"])
def test_resume_continues_exactly(text_file, tmp_path, model):
    straight = tmp_path / "straight"
    train(TrainConfig(**tiny_args(text_file, straight, model=model, max_steps=8)))
    split = tmp_path / "split"
    # First half: same schedule (decay over 8 steps), stop at 4.
    train(TrainConfig(**tiny_args(text_file, split, model=model, max_steps=4, lr_decay_steps=8)))
    # From Python as from the CLI: the saved config, with what is set here (max_steps) applied.
    train(TrainConfig(out=str(split), resume=True, max_steps=8))
    assert len(losses(split)) == 8
    assert losses(split) == losses(straight)  # bit-identical on CPU
    a, *_ = load_model(straight)
    b, *_ = load_model(split)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert sorted(p.name for p in split.glob("ckpt-*")) == ["ckpt-0000004", "ckpt-0000008"]  # keep 2 by default


def rewrite_json(ckpt, name, change):
    """Replace checkpoint file `name` by change(its JSON), manifest updated: how an older version wrote it."""
    import hashlib

    (ckpt / name).write_text(json.dumps(change(json.loads((ckpt / name).read_text()))))
    manifest = json.loads((ckpt / "manifest.json").read_text())
    data = (ckpt / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def test_resume_keeps_the_saved_scan_chunk(text_file, tmp_path):
    """A run saved when `scan_chunk` defaulted to 64 resumes after the default became 16 (the chunk changes only
    round-off), and keeps its chunk; a changed width is still refused."""
    out = tmp_path / "run"
    train(TrainConfig(**tiny_args(text_file, out, max_steps=2, lr_decay_steps=4)))
    (ckpt,) = out.glob("ckpt-*")
    config = json.loads((ckpt / "model_config.json").read_text())
    assert config["scan_chunk"] != 64  # the current default; the saved run below pretends to predate it
    rewrite_json(ckpt, "model_config.json", lambda c: {**c, "scan_chunk": 64})
    train(TrainConfig(out=str(out), resume=True, max_steps=4))
    model, *_ = load_model(out)
    assert model.config.scan_chunk == 64 and len(losses(out)) == 4


@pytest.mark.parametrize("old_args", [{"v2_init": True}, {"v2_init": True, "init": "gpt2"}])
def test_run_started_with_v2_init_resumes_exactly(text_file, tmp_path, old_args):
    """A run started with `--model-args v2_init=true` (before init="v2"; its train_config.json and
    model_config.json say so) resumes, from Python as from the CLI, and ends with the weights of a straight
    init="v2" run; the old switch given again on the resume line is the same config."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(TrainConfig(**tiny_args(text_file, straight, max_steps=4, model_args={"init": "v2"})))
    train(TrainConfig(**tiny_args(text_file, split, max_steps=2, lr_decay_steps=4, model_args={"init": "v2"})))
    (ckpt,) = split.glob("ckpt-*")
    rewrite_json(ckpt, "train_config.json", lambda c: {**c, "model_args": old_args})
    rewrite_json(ckpt, "model_config.json", lambda c: {**c, "init": "gpt2", "v2_init": True})
    train(TrainConfig(out=str(split), resume=True, max_steps=4), given={"max_steps": 4, "model_args": old_args})
    assert losses(split) == losses(straight)
    a, *_ = load_model(straight)
    b, *_ = load_model(split)
    assert b.config.init == "v2"
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_resumed_run_reports_the_elapsed_time_of_the_whole_run(text_file, tmp_path, monkeypatch):
    """10 s per training micro-batch: a run stopped at step 2 and resumed to 4 reports 40 s in summary.json and
    metrics.csv, as a straight run does (before, the summary counted the last session only)."""
    import time

    from memory_mosaics.training.trainer import LanguageModelTask

    now, real = [1e6], LanguageModelTask.loss

    def loss(self, model, micro):
        now[0] += 10.0
        return real(self, model, micro)

    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(LanguageModelTask, "loss", loss)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(TrainConfig(**tiny_args(text_file, straight, max_steps=4)))
    train(TrainConfig(**tiny_args(text_file, split, max_steps=2, lr_decay_steps=4)))
    train(TrainConfig(out=str(split), resume=True, max_steps=4))
    for out in (straight, split):
        assert json.loads((out / "summary.json").read_text())["elapsed_s"] == 40.0
        assert [r["elapsed_s"] for r in read_metrics(out / "metrics.csv")] == [10.0, 20.0, 30.0, 40.0]


def test_old_model_args_upgrade_against_the_preset():
    """A SAVED run's v2_init read with the init the preset gives when model_args leave it out (tiny: gpt2 -> v2;
    paper: library -> library), and v2_init=false over a preset that is "v2" today (it set v2_init=true then)."""
    def args(preset, model_args):
        return MosaicConfig.upgrade_overrides(preset, model_args)

    assert args("tiny", {"v2_init": True}) == {"init": "v2"}
    assert args("tiny", {"v2_init": True, "n_layer": 1}) == {"init": "v2", "n_layer": 1}
    assert args("paper", {"v2_init": True}) == {}
    assert args("small-v2", {"v2_init": True}) == {}
    assert args("small-v2", {"v2_init": False}) == {"init": "gpt2"}
    assert args("small-v2", {"v2_init": False, "init": "v2"}) == {"init": "v2"}  # an explicit init is kept
    assert args("tiny", {"v2_init": False}) == {}
    assert TrainConfig(model="transformer", model_args={"positions": "rotary"}).model_args == {"positions": "rotary"}


@pytest.mark.parametrize("preset", ["tiny", "paper", "small-v2"])
def test_new_run_naming_the_removed_v2_init_is_refused(preset):
    """Only saved runs are upgraded: a NEW run asking for v2_init would otherwise get a silent substitute (with
    the paper preset, the Library draws instead of v2's)."""
    with pytest.raises(ConfigError, match="v2_init.*did you mean 'init'"):
        TrainConfig(preset=preset, model_args={"v2_init": True})


def test_grad_accumulation_matches_full_batch(text_file, tmp_path):
    train(TrainConfig(**tiny_args(text_file, tmp_path / "a", batch_size=8, grad_accum=1, max_steps=4)))
    train(TrainConfig(**tiny_args(text_file, tmp_path / "b", batch_size=8, grad_accum=2, max_steps=4)))
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    # Same windows, same initial weights: only the summation order of a float32 mean over 512 tokens differs
    # (≤ ~1e-6 relative in the worst case), while different windows would differ by ~1e-2.
    assert la[0] == pytest.approx(lb[0], rel=1e-5)
    assert la == pytest.approx(lb, rel=1e-4)


def test_training_reduces_loss_and_writes_run(text_file, tmp_path):
    out = tmp_path / "run"
    summary = train(TrainConfig(**tiny_args(text_file, out, max_steps=40, eval_interval=20, lr=2e-2,
                                            batch_size=8)))
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [20, 40]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.5
    assert summary["val_loss"] == pytest.approx(rows[-1]["val_loss"])
    assert json.loads((out / "summary.json").read_text())["step"] == 40
    assert rows[-1]["tokens"] == 40 * 8 * 64


def test_resume_refuses_changes():
    saved = TrainConfig(preset="tiny", data="x").to_dict()
    with pytest.raises(ConfigError, match="preset: checkpoint 'tiny', now 'small'"):
        merge_for_resume(saved, {"preset": "small"})
    with pytest.raises(ConfigError, match="lr"):
        merge_for_resume(saved, {"lr": 1.0})
    assert merge_for_resume(saved, {"max_steps": 5000}).lr_decay_steps == saved["max_steps"]


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        TrainConfig(preset="huge")
    with pytest.raises(ConfigError, match="did you mean 'n_layer'"):
        TrainConfig(model_args={"n_layers": 2})
    with pytest.raises(ConfigError, match="divisible by grad_accum"):
        TrainConfig(batch_size=6, grad_accum=4)


def test_mixed_precision_needs_cuda(text_file, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train(TrainConfig(**tiny_args(text_file, tmp_path / "r", dtype="bfloat16", device="cpu")))
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_compiled_training_saves_plain_weights(text_file, tmp_path):
    """torch.compile on CPU takes tens of seconds: slow. The checkpoint holds no `_orig_mod.` prefixes."""
    out = tmp_path / "c"
    train(TrainConfig(**tiny_args(text_file, out, max_steps=2, compile=True)))
    from safetensors import safe_open

    with safe_open(str(out / "ckpt-0000002" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith(("_orig_mod.", "module.")) for k in keys)
    load_model(out)


def test_verify_cache_flag_hashes_a_token_cache_restored_with_its_mtime(text_file, tmp_path, monkeypatch, capsys):
    """A cached .bin damaged with its size and mtime kept (a rotted backup restored with cp -p) is served unhashed;
    `--verify-cache` (allowed on --resume) reaches tokenize_cached, which finds it corrupt and rebuilds it."""
    import os

    from memory_mosaics.cli import main
    from memory_mosaics.data import sources
    from memory_mosaics.training import trainer

    seen, real = [], trainer.tokenize_cached
    monkeypatch.setattr(trainer, "tokenize_cached", lambda *a, **kw: seen.append(kw.get("verify")) or real(*a, **kw))
    run = ["train", *TINY, "--data", str(text_file), "--out", str(tmp_path / "run")]
    assert main([*run, "--max-steps", "2", "--lr-decay-steps", "4"]) == 0
    (bin_path,) = (sources.cache_dir() / "tokens").glob("*.bin")
    good, st = bin_path.read_bytes(), bin_path.stat()
    bin_path.write_bytes(good[:100] + bytes(8) + good[108:])  # same size, other tokens ...
    os.utime(bin_path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the mtime the sidecar recorded
    capsys.readouterr()
    assert main([*run, "--resume", "--max-steps", "4", "--verify-cache"]) == 0
    assert seen == [False, True] and "is corrupt" in capsys.readouterr().err
    assert bin_path.read_bytes() == good
    assert json.loads((tmp_path / "run" / "ckpt-0000004" / "train_config.json").read_text())["verify_cache"]
