import json
from pathlib import Path

import pytest
import torch

from memory_mosaics import MosaicConfig, TransformerConfig, build_model
from memory_mosaics.data import CharTokenizer
from memory_mosaics.training import checkpoint as ck


def save(run, step, model, **kw):
    return ck.save_checkpoint(run, step, model_state=model.state_dict(), model_config=model.config.to_dict(),
                              tokenizer=CharTokenizer(list("abc")).to_dict(), train_config={"x": 1},
                              state={"step": step, **kw})


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


def test_unwrap_strips_compile_and_ddp_wrappers(model):
    class Compiled(torch.nn.Module):  # what torch.compile returns exposes the model as _orig_mod
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    wrapped = Compiled(model)
    assert any(k.startswith("_orig_mod.") for k in wrapped.state_dict())
    assert ck.unwrap(wrapped) is model
    assert set(ck.unwrap(wrapped).state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]), "truncated"),
    (lambda d: (d / "state.pt").write_bytes(b"x" + (d / "state.pt").read_bytes()[1:]), "does not match its sha256"),
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


def test_failed_save_keeps_last_good_checkpoint(tmp_path, model, monkeypatch):
    save(tmp_path, 1, model)
    real = Path.write_bytes

    def dying(self, data):
        if self.name == "state.pt":
            raise OSError("disk full")  # a kill / crash in the middle of writing
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", dying)
    with pytest.raises(OSError):
        save(tmp_path, 2, model)
    monkeypatch.undo()
    assert ck.resolve(tmp_path).name == "ckpt-0000001"
    ck.verify(ck.resolve(tmp_path))
    assert not list(tmp_path.glob(".ckpt-*")) and not (tmp_path / "ckpt-0000002").exists()
    save(tmp_path, 3, model)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-0000003"]
    assert json.loads((tmp_path / "ckpt-0000003" / "manifest.json").read_text())["step"] == 3


def test_resolve_errors(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.resolve(tmp_path / "nope")
    with pytest.raises(ck.CheckpointError, match="not a checkpoint"):
        ck.resolve(tmp_path)
