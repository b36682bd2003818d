"""`mosaic export` of the long-context models: a Memory Mosaic v2 and a rotary transformer load with Auto classes
and give the native logits and greedy continuations (past the windows and the training context)."""

import pytest
import torch

from memory_mosaics.cli import main
from memory_mosaics.training.checkpoint import load_model
from tests.helpers import TINY, assert_close

transformers = pytest.importorskip("transformers")

V2 = ["short_window=8", "long_offset=4", "long_offset_min=4", "long_offset_max=12", "adaptive_bandwidth=true",
      "key_gate=true", "ffn=swiglu", "init=v2"]


def _train_and_export(kind, model_args, text_file, tmp_path):
    """Two training steps of `kind` with model_args, exported: (run folder, Hugging Face folder)."""
    run, hf = tmp_path / "run", tmp_path / "hf"
    extra = [x for a in model_args for x in ("--model-args", a)]
    assert main(["train", "--model", kind, *TINY, "--max-steps", "2", "--data", str(text_file), "--out", str(run),
                 *extra]) == 0
    assert main(["export", "--checkpoint", str(run), "--hf", str(hf)]) == 0
    return run, hf


@pytest.mark.parametrize("kind,model_args", [("mosaic", V2), ("transformer", ["positions=rotary"])])
def test_export_roundtrip(kind, model_args, text_file, tmp_path):
    run, hf = _train_and_export(kind, model_args, text_file, tmp_path)
    native = load_model(run)[0].eval()
    model = transformers.AutoModelForCausalLM.from_pretrained(hf, trust_remote_code=True).eval()
    x = torch.randint(0, native.config.vocab_size, (1, 100))  # longer than block_size (64)
    with torch.no_grad():
        assert torch.equal(model(x).logits, native(x))
    out = model.generate(x[:, :3], max_new_tokens=90, do_sample=False)
    assert torch.equal(out, native.generate(x[:, :3], 90, temperature=0.0))
    # No position table in either model: the tokenizer allows 4× the training context (a learned table: 1×).
    assert native.max_context is None
    assert transformers.AutoTokenizer.from_pretrained(hf).model_max_length == 4 * native.config.block_size
    # Beam search reorders the cache (a v2 memory's cache is a list of per-memory caches): same beams as without one.
    beams = model.generate(x[:, :3], max_new_tokens=20, do_sample=False, num_beams=3)
    assert beams.shape == (1, 23)
    assert torch.equal(beams, model.generate(x[:, :3], max_new_tokens=20, do_sample=False, num_beams=3,
                                             use_cache=False))


@pytest.mark.parametrize("kind,model_args", [("mosaic", V2), ("transformer", ["positions=rotary"])])
def test_left_padded_batch_generates_each_row_alone(kind, model_args, text_file, tmp_path):
    # A left-padded v2 batch (attention_mask) past the window h = 8 and the offset m = 4: each row as alone.
    _, hf = _train_and_export(kind, model_args, text_file, tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf, trust_remote_code=True).eval()
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, model.config.vocab_size, (1, n), generator=g) for n in (30, 11, 2)]
    T = max(r.shape[1] for r in rows)
    ids = torch.cat([torch.cat([torch.zeros(1, T - r.shape[1], dtype=torch.long), r], 1) for r in rows])
    mask = torch.cat([(torch.arange(T) >= T - r.shape[1]).long()[None] for r in rows])
    kw = dict(max_new_tokens=20, do_sample=False, output_logits=True, return_dict_in_generate=True)
    out = model.generate(ids, attention_mask=mask, **kw)
    for i, r in enumerate(rows):
        alone = model.generate(r, attention_mask=torch.ones_like(r), **kw)
        n = alone.sequences.shape[1] - r.shape[1]  # transformers stops a row alone at end-of-text
        assert torch.equal(out.sequences[i, T:T + n], alone.sequences[0, r.shape[1]:]), f"row {i}"
        got, want = torch.stack(out.logits, 1)[i, :n], torch.stack(alone.logits, 1)[0]
        assert_close(got, want, rtol=1e-4, what=f"row {i} logits")
