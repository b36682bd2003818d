"""The Hugging Face models against the library's own: logits, greedy generation, left padding, beam search, loss."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import memory_mosaics
from memory_mosaics.hf import MemoryMosaicCache, MemoryMosaicForCausalLM, MosaicTransformerForCausalLM
from tests.helpers import assert_close

KINDS = ["mosaic", "transformer"]
PROMPTS = ["ROMEO:\nWhat", "Be", "First Citizen:\nYou are all resolved"]


def _load(hf_runs, kind):
    run, out = hf_runs[kind]
    native, tok = memory_mosaics.load_checkpoint(run)
    return native, tok, AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)


@pytest.mark.parametrize("kind", KINDS)
def test_export_reloads_through_auto_classes_with_native_logits(hf_runs, kind):
    native, tok, model, hf_tok = _load(hf_runs, kind)
    expected = MemoryMosaicForCausalLM if kind == "mosaic" else MosaicTransformerForCausalLM
    assert type(model) is expected and not model.training
    assert type(AutoConfig.from_pretrained(hf_runs[kind][1])) is expected.config_class
    assert model.config.to_library() == native.config
    idx = torch.tensor([tok.encode(PROMPTS[2] + " " + PROMPTS[0])])
    with torch.no_grad():
        ref = native(idx)
        assert_close(model(idx).logits, ref, rtol=1e-5, what="cached path (prefill)")
    assert_close(model(idx, use_cache=False).logits, ref, rtol=1e-5, what="forward path")


def _cut_at_eos(row: list[int], eos: int) -> list[int]:
    return row[: row.index(eos) + 1] if eos in row else row


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generate_equals_native_generate(hf_runs, kind):
    native, tok, model, _ = _load(hf_runs, kind)
    for prompt in PROMPTS:
        idx = torch.tensor([tok.encode(prompt)])
        n = idx.shape[1]
        ref = native.generate(idx, 24, temperature=0)
        out = model.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=24, do_sample=False,
                             output_logits=True, return_dict_in_generate=True)
        got = out.sequences[0, n:].tolist()
        # transformers stops at end-of-text (the library's generate does not): equal up to there.
        assert got == _cut_at_eos(ref[0, n:].tolist(), tok.eot_id), prompt
        # and each step's logits (cached decoding) are the uncached native forward's
        with torch.no_grad():
            full = native(out.sequences)[:, n - 1:-1]
        assert_close(torch.stack(out.logits, dim=1), full, rtol=1e-5, what=prompt)


@pytest.mark.parametrize("kind", KINDS)
def test_left_padded_batch_generates_each_prompt_alone(hf_runs, kind):
    _, _, model, hf_tok = _load(hf_runs, kind)
    batch = hf_tok(PROMPTS, return_tensors="pt", padding=True)
    assert hf_tok.padding_side == "left" and not bool(batch.attention_mask.all())
    kw = dict(max_new_tokens=16, do_sample=False, output_logits=True, return_dict_in_generate=True)
    out = model.generate(**batch, **kw)
    T = batch.input_ids.shape[1]
    for i, prompt in enumerate(PROMPTS):
        alone = hf_tok(prompt, return_tensors="pt")
        ref = model.generate(**alone, **kw)
        got = out.sequences[i, T:].tolist()
        want = ref.sequences[0, alone.input_ids.shape[1]:].tolist()
        assert _cut_at_eos(got, hf_tok.eos_token_id) == _cut_at_eos(want, hf_tok.eos_token_id), prompt
        steps = len(_cut_at_eos(want, hf_tok.eos_token_id))  # logits agree while the row is still generating
        assert_close(torch.stack(out.logits, 1)[i, :steps], torch.stack(ref.logits, 1)[0, :steps], rtol=1e-5,
                     what=prompt)


@pytest.mark.parametrize("kind", KINDS)
def test_cache_class_and_beam_search_reorders_it(hf_runs, kind):
    _, tok, model, _ = _load(hf_runs, kind)
    idx = torch.tensor([tok.encode(PROMPTS[0])])
    with torch.no_grad():
        out = model(idx, use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    assert isinstance(cache, MemoryMosaicCache) and cache.get_seq_length() == idx.shape[1]
    kwargs = dict(max_new_tokens=8, do_sample=False, num_beams=3, num_return_sequences=2)
    with_cache = model.generate(idx, **kwargs)
    without = model.generate(idx, use_cache=False, **kwargs)  # re-runs the whole prefix every step
    assert torch.equal(with_cache, without)


def test_labels_give_the_native_loss_and_a_gradient(hf_runs):
    native, tok, model, _ = _load(hf_runs, "mosaic")
    idx = torch.tensor([tok.encode(PROMPTS[2])])
    model.train()
    out = model(idx, labels=idx)
    ref = F.cross_entropy(native(idx)[0, :-1], idx[0, 1:])
    assert_close(out.loss, ref, rtol=1e-5)
    out.loss.backward()
    assert model.model.wte.weight.grad is not None and model.model.wte.weight.grad.abs().sum() > 0


def test_tokenizers_round_trip(hf_runs):
    for kind in KINDS:  # BPE (mosaic run) and characters (transformer run)
        run, out = hf_runs[kind]
        _, tok = memory_mosaics.load_checkpoint(run)
        hf_tok = AutoTokenizer.from_pretrained(out)
        assert hf_tok.is_fast and hf_tok.eos_token_id == hf_tok.pad_token_id == tok.eot_id
        for text in [PROMPTS[2], "A line.\n\nAnother<|endoftext|>Next", " leading  spaces "]:
            ids = tok.encode(text)
            assert hf_tok(text).input_ids == ids, (kind, text)
            assert hf_tok.decode(ids) == tok.decode(ids)
    assert AutoTokenizer.from_pretrained(hf_runs["mosaic"][1]).model_max_length == 4 * 64  # no position limit
    assert AutoTokenizer.from_pretrained(hf_runs["transformer"][1]).model_max_length == 64


def test_core_imports_without_transformers_and_registers_lazily():
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None\n"  # as if not installed
        "import memory_mosaics, torch\n"
        "m = memory_mosaics.MemoryMosaic(memory_mosaics.MosaicConfig.preset('tiny'))\n"
        "assert m(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 256)\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
    # Registration is lazy: importing memory_mosaics does not import transformers; importing transformers later
    # registers both model types.
    code = (
        "import sys, memory_mosaics\n"
        "assert 'transformers' not in sys.modules\n"
        "from transformers import AutoConfig\n"
        "assert type(AutoConfig.for_model('memory_mosaic')).__name__ == 'MemoryMosaicHFConfig'\n"
        "assert type(AutoConfig.for_model('memory_mosaic_transformer')).__name__ == 'MosaicTransformerHFConfig'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_json_with_v2_init_reads_as_init_v2(tmp_path):
    """A config.json exported before init="v2" (`init: gpt2, v2_init: true`) rebuilds today's config, and the
    HF config itself says init "v2" and writes no `v2_init` back (it kept both and saved them again)."""
    import json

    from memory_mosaics import MosaicConfig
    from memory_mosaics.hf import MemoryMosaicHFConfig

    fields = MosaicConfig.preset("small-v2", n_layer=1).to_dict()
    fields.pop("model_type")
    hf = MemoryMosaicHFConfig(**{**fields, "init": "gpt2", "v2_init": True})
    assert hf.to_library() == MosaicConfig.preset("small-v2", n_layer=1)
    assert hf.init == "v2" and not hasattr(hf, "v2_init")
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({**fields, "model_type": "memory_mosaic", "init": "gpt2",
                                                 "v2_init": True}))
    loaded = MemoryMosaicHFConfig.from_pretrained(old)
    assert loaded.init == "v2" and loaded.to_library() == MosaicConfig.preset("small-v2", n_layer=1)
    loaded.save_pretrained(tmp_path / "resaved")
    saved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert saved["init"] == "v2" and "v2_init" not in saved
    assert MemoryMosaicHFConfig.from_pretrained(tmp_path / "resaved").to_library() == loaded.to_library()
    assert MemoryMosaicHFConfig().tie_word_embeddings is False  # the library's head: one tensor, nothing to tie
