"""`mosaic export` of the long-context models: a Memory Mosaic v2 and a rotary transformer load with Auto classes
and give the native logits and greedy continuations (past the windows and the training context)."""

import pytest
import torch

from memory_mosaics.cli import main
from memory_mosaics.training.checkpoint import load_model
from tests.helpers import TINY

transformers = pytest.importorskip("transformers")

V2 = ["short_window=8", "long_offset=4", "long_offset_min=4", "long_offset_max=12", "adaptive_bandwidth=true",
      "key_gate=true", "ffn=swiglu", "v2_init=true"]


@pytest.mark.parametrize("kind,model_args", [("mosaic", V2), ("transformer", ["positions=rotary"])])
def test_export_roundtrip(kind, model_args, text_file, tmp_path):
    run, hf = tmp_path / "run", tmp_path / "hf"
    extra = [x for a in model_args for x in ("--model-args", a)]
    assert main(["train", "--model", kind, *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(run),
                 *extra]) == 0
    assert main(["export", "--checkpoint", str(run), "--hf", str(hf)]) == 0
    native = load_model(run)[0].eval()
    model = transformers.AutoModelForCausalLM.from_pretrained(hf, trust_remote_code=True).eval()
    x = torch.randint(0, native.config.vocab_size, (1, 100))  # longer than block_size (64)
    with torch.no_grad():
        assert torch.equal(model(x).logits, native(x))
    out = model.generate(x[:, :3], max_new_tokens=90, do_sample=False)
    assert torch.equal(out, native.generate(x[:, :3], 90, temperature=0.0))
    # Beam search reorders the cache (a v2 memory's cache is a list of per-memory caches): same beams as without one.
    beams = model.generate(x[:, :3], max_new_tokens=20, do_sample=False, num_beams=3)
    assert beams.shape == (1, 23)
    assert torch.equal(beams, model.generate(x[:, :3], max_new_tokens=20, do_sample=False, num_beams=3,
                                             use_cache=False))
