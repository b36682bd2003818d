import errno
import json

import pytest
import torch

from memory_mosaics import MosaicConfig, TransformerConfig, build_model
from memory_mosaics.data import CharTokenizer
from memory_mosaics.training import checkpoint as ck


def save(run, step, model, keep=2, **state):
    return ck.save_checkpoint(run, step, model_state=model.state_dict(), model_config=model.config.to_dict(),
                              tokenizer=CharTokenizer(list("abc")).to_dict(), train_config={"x": 1},
                              state={"step": step, **state}, keep=keep)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(MosaicConfig.preset("tiny", vocab_size=4))


def test_roundtrip(tmp_path, model):
    path = save(tmp_path, 5, model)
    assert path.name == "ckpt-0000005" and ck.resolve(tmp_path) == path
    loaded, tok, train_cfg, where = ck.load_model(tmp_path)
    assert where == path and train_cfg == {"x": 1} and tok.decode([1, 2]) == "ab"
    for (k, v), w in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v, w), k
    assert ck.load_state(path)["step"] == 5
    assert not (path / "state.pt").exists()  # nothing pickled


def test_state_roundtrips_without_pickle(tmp_path, model):
    """Optimizer state (int keys, tuples, 0-dim tensors), RNG states, non-finite floats: all come back equal."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 4, (2, 8))).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": [torch.get_rng_state()], "scale": float("inf"),
             "nested": {"a": (1, 2.5, None, "x"), 3: [True]}}
    back = ck.load_state(save(tmp_path, 7, model, **state))
    assert back["step"] == 7 and back["scale"] == float("inf") and back["nested"] == state["nested"]
    assert torch.equal(back["rng"][0], state["rng"][0])
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])
    for p in model.parameters():
        for k, v in opt.state[p].items():
            assert torch.equal(fresh.state[p][k], v), k
    assert fresh.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(TypeError, match="cannot store"):
        save(tmp_path, 8, model, bad=object())


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]), "truncated"),
    (lambda d: (d / "state.json").write_bytes(b"x" + (d / "state.json").read_bytes()[1:]), "does not match its sha256"),
    (lambda d: (d / "tokenizer.json").unlink(), "missing tokenizer.json"),
    (lambda d: (d / "manifest.json").write_text("{"), "corrupt manifest"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest"),
])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, model, damage, match):
    damage(save(tmp_path, 1, model))
    with pytest.raises(ck.CheckpointError, match=match):
        ck.load_model(tmp_path)


def test_different_model_is_refused(tmp_path, model):
    path = save(tmp_path, 1, model)
    other = build_model(MosaicConfig.preset("tiny", vocab_size=4, n_embd=64))
    with pytest.raises(ck.CheckpointError, match="shape mismatches.*different model"):
        ck.load_weights(other, path / "model.safetensors")
    gpt = build_model(TransformerConfig.preset("tiny", vocab_size=4))
    with pytest.raises(ck.CheckpointError, match="missing .* tensors"):
        ck.load_weights(gpt, path / "model.safetensors")


def test_full_disk_keeps_last_good_checkpoint(tmp_path, model, monkeypatch):
    save(tmp_path, 1, model)
    real = ck._write_synced

    def full_disk(path, data):
        if path.name == "state.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")  # what a full disk raises mid-checkpoint
        return real(path, data)

    monkeypatch.setattr(ck, "_write_synced", full_disk)
    with pytest.raises(ck.CheckpointError, match="cannot write checkpoint ckpt-0000002.*No space left on device"):
        save(tmp_path, 2, model)
    monkeypatch.undo()
    assert ck.resolve(tmp_path).name == "ckpt-0000001"
    ck.verify(ck.resolve(tmp_path), need=ck.FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-0000001", "latest"]  # no temporary folder left
    save(tmp_path, 3, model, keep=1)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-0000003"]
    assert json.loads((tmp_path / "ckpt-0000003" / "manifest.json").read_text())["step"] == 3


def test_keep_newest_n(tmp_path, model):
    for step in (1, 2, 3, 4, 5):
        save(tmp_path, step, model)  # default keep=2
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["ckpt-0000004", "ckpt-0000005"]
    save(tmp_path, 6, model, keep=3)
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["ckpt-0000004", "ckpt-0000005", "ckpt-0000006"]


@pytest.mark.parametrize("damage", [
    lambda d: (d / "state.safetensors").write_bytes(b"\0" * 10),
    lambda d: (d / "model.safetensors").unlink(),
    lambda d: (d / "manifest.json").write_text("{"),
])
def test_resume_falls_back_to_newest_intact_checkpoint(tmp_path, model, damage):
    save(tmp_path, 4, model)
    damage(save(tmp_path, 8, model))
    said = []
    ckpt, state = ck.resumable(tmp_path, log=said.append)
    assert ckpt.name == "ckpt-0000004" and state["step"] == 4
    assert len(said) == 1 and "ckpt-0000008" in said[0] and "resuming from ckpt-0000004" in said[0]
    save(tmp_path, 5, model)  # the resumed run replaces the abandoned future
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["ckpt-0000004", "ckpt-0000005"]
    damage(tmp_path / "ckpt-0000005")
    damage(tmp_path / "ckpt-0000004")
    with pytest.raises(ck.CheckpointError, match="no usable checkpoint.*1 older ones are damaged too"):
        ck.resumable(tmp_path)


def test_latest_cannot_point_outside_the_run(tmp_path, model):
    save(tmp_path / "run", 1, model)
    (tmp_path / "run" / "latest").write_text("../elsewhere\n")
    with pytest.raises(ck.CheckpointError, match="latest is corrupt"):
        ck.resolve(tmp_path / "run")


def test_non_finite_weights_are_refused(tmp_path, model):
    state = model.state_dict()
    state["wte.weight"] = state["wte.weight"].clone().fill_(float("nan"))
    ck.save_checkpoint(tmp_path, 1, model_state=state, model_config=model.config.to_dict(),
                       tokenizer=CharTokenizer(list("abc")).to_dict(), train_config={}, state={"step": 1})
    with pytest.raises(ck.CheckpointError, match="NaN or infinite values.*wte.weight"):
        ck.load_model(tmp_path)


def test_resolve_errors(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.resolve(tmp_path / "nope")
    with pytest.raises(ck.CheckpointError, match="not a checkpoint"):
        ck.resolve(tmp_path)
