"""Cached decoding against the uncached forward, token by token.

In float64: the two paths compute the same maths in a different order, so they differ by round-off only,
~1e-16 of the magnitudes involved, 10^6 below the tolerance on any CPU, while a wrong cache is off by O(1).
Greedy decoding compares argmaxes, which float32 round-off could flip at a near-tie on another CPU."""

import pytest
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from memory_mosaics.generation import sample_next
from tests.helpers import assert_close

ABLATIONS = [{}, dict(value_peek=False), dict(key_leaky_average=False), dict(ffn="mlp"), dict(key_norm=False)]


def mosaic(**kw):
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny", block_size=32, scan_chunk=8, **kw)).eval()
    with torch.no_grad():  # a mixed peek (neither pure x_t nor pure x_{t+1}) so a wrong completion would show
        for block in model.blocks:
            if hasattr(block.cmem.value, "gamma"):
                block.cmem.value.gamma.fill_(0.3)
    return model


def check_cached_equals_full(model, prompt_len, n_new, batch=2, rtol=1e-10):
    model = model.double()
    torch.manual_seed(prompt_len)
    seq = torch.randint(0, model.config.vocab_size, (batch, prompt_len + n_new))
    logits, cache = model.prefill(seq[:, :prompt_len])
    assert_close(logits, model(seq[:, :prompt_len]), rtol, what="prefill")
    for t in range(prompt_len, prompt_len + n_new):
        step_logits = model.decode_step(seq[:, t : t + 1], cache)[:, 0]
        full_logits = model(seq[:, : t + 1])[:, -1]
        assert_close(step_logits, full_logits, rtol, what=f"position {t}")
    assert cache.length == prompt_len + n_new


@pytest.mark.parametrize("prompt_len", [1, 5])
@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda a: ",".join(a) or "paper")
def test_mosaic_cache_matches_forward_across_training_context(prompt_len, ablation):
    # block_size is 32: decoding to 45 positions crosses the training context.
    check_cached_equals_full(mosaic(**ablation), prompt_len, 45 - prompt_len)


def test_mosaic_cache_batch_of_one_and_reference_impl():
    model = mosaic().set_impl("reference")
    check_cached_equals_full(model, 3, 10, batch=1)


@pytest.mark.parametrize("prompt_len", [1, 6])
def test_transformer_kv_cache_matches_forward(prompt_len):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.preset("tiny", block_size=32)).eval()
    check_cached_equals_full(model, prompt_len, 32 - prompt_len)


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
def test_greedy_generation_same_with_and_without_cache(kind):
    model = mosaic() if kind == "mosaic" else Transformer(TransformerConfig.preset("tiny", block_size=32)).eval()
    model.double()
    prompt = torch.randint(0, 256, (2, 4))
    cached = model.generate(prompt, 40, temperature=0.0)  # past block_size=32 for both
    uncached = model.generate(prompt, 40, temperature=0.0, use_cache=False)
    assert cached.shape == (2, 44)
    assert torch.equal(cached[:, :4], prompt)
    assert torch.equal(cached, uncached)


def test_sampling_is_seeded_and_restores_training_mode():
    model = mosaic().train()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    a = model.generate(prompt, 12, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 12, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert model.training


def test_sample_next():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert sample_next(logits, 0.0).item() == 1
    assert sample_next(logits, 1.0, top_k=1).item() == 1
    draws = {sample_next(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(s)).item() for s in range(50)}
    assert draws == {1, 3}
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, -1.0)


def test_decode_step_rejects_bad_input():
    model = mosaic()
    _, cache = model.prefill(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="one token"):
        model.decode_step(torch.zeros(1, 2, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.decode_step(torch.full((1, 1), 999), cache)


@pytest.mark.parametrize("v2", [False, True])
def test_reserved_buffers_are_not_reallocated_and_match_forward(v2):
    model = mosaic().double()
    if v2:  # the three-level memory's caches sit one list deeper (they were once missed by reserve)
        torch.manual_seed(0)
        model = MemoryMosaic(model.config.replace(**MosaicConfig.V2_SWITCHES, short_window=8, long_offset=4,
                                                  long_offset_min=4, long_offset_max=9)).double().eval()
    torch.manual_seed(3)
    seq = torch.randint(0, 256, (2, 80))  # past the buffers' first 64 slots
    _, cache = model.prefill(seq[:, :4])
    cache.reserve(80)
    buffers = cache.buffers()
    # keys and values of the context memory per layer (v2: of its short- and long-term memories)
    assert len(buffers) == 2 * (2 if v2 else 1) * model.config.n_layer
    assert all(b._data.shape[2] >= 80 for b in buffers)
    ptrs = [b._data.data_ptr() for b in buffers]
    for t in range(4, 80):
        step_logits = model.decode_step(seq[:, t : t + 1], cache)[:, 0]
    assert [b._data.data_ptr() for b in buffers] == ptrs
    assert_close(step_logits, model(seq)[:, -1], 1e-10, what="last position")
