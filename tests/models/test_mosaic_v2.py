"""Memory Mosaics v2 switches: v1 when off, fast = reference, causality, cached decoding across the window edge and
the long-term offset, the m schedule, the init and the presets."""

import copy
import math

import pytest
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig, TransformerConfig, config_from_dict
from memory_mosaics.config import ConfigError
from memory_mosaics.layers import ContextMemory
from memory_mosaics.layers.three_level_memory import ContextMemoryV2
from memory_mosaics.layers.v2_init import v2_init_
from tests.helpers import assert_close, assert_padded_decoding_is_each_row_alone, grad_scale

TINY = dict(scan_chunk=4, block_size=32)
# Each switch alone, and the combinations that matter (h = 5, m = 3 inside a 20-token test: both edges crossed).
SWITCHES = {
    "adaptive": dict(adaptive_bandwidth=True),
    "gate": dict(key_gate=True),
    "short": dict(short_window=5),
    "long": dict(long_offset=3),
    "no-long": dict(adaptive_bandwidth=True, key_gate=True, short_window=5, ffn="swiglu", init="v2"),
    "fixed-m": dict(adaptive_bandwidth=True, key_gate=True, short_window=5, long_offset=3, ffn="swiglu"),
    "v2": dict(adaptive_bandwidth=True, key_gate=True, short_window=5, long_offset=3, long_offset_min=3,
               long_offset_max=9, ffn="swiglu", init="v2"),
}
# The ablations of the paper's ambiguous points, on top of the full v2.
SWITCHES["appc-window"] = dict(SWITCHES["v2"], window_convention="appc")
SWITCHES["m-per-forward"] = dict(SWITCHES["v2"], long_offset_draw="forward")
SWITCHES["shared-heads"] = dict(SWITCHES["v2"], v2_per_head=False)


def build(seed=0, **kw):
    torch.manual_seed(seed)
    return MemoryMosaic(MosaicConfig.preset("tiny", **TINY, **kw)).eval()


def test_every_switch_off_is_v1_exactly():
    off = dict(adaptive_bandwidth=False, key_gate=False, short_window=0, long_offset=0, long_offset_min=0,
               long_offset_max=0, init="gpt2")  # tiny's init: v2's off
    v1, v1_explicit = build(), build(**off)
    assert isinstance(v1.blocks[0].cmem, ContextMemory)
    assert v1.state_dict().keys() == v1_explicit.state_dict().keys()
    for (k, a), b in zip(v1.state_dict().items(), v1_explicit.state_dict().values()):
        assert torch.equal(a, b), k  # same initialisation, same random stream
    idx = torch.randint(0, 256, (2, 20))
    assert torch.equal(v1(idx), v1_explicit(idx))


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_v2_memory_with_switches_off_computes_v1_context_memory(impl):
    # ContextMemoryV2's code path with one full-past memory, v1 keys and v1 bandwidth = v1's ContextMemory.
    cfg = MosaicConfig.preset("tiny", **TINY, impl=impl)
    torch.manual_seed(0)
    v1 = ContextMemory(cfg).double()
    v2 = ContextMemoryV2(cfg).double()
    mem = v2.memories["full"]
    with torch.no_grad():
        mem.key.proj.weight.copy_(v1.key.proj.weight)
        mem.key.rho.copy_(torch.tensor([0.07, 0.31]))
        v1.key.rho.copy_(mem.key.rho)
        mem.key.theta.copy_(torch.tensor([0.13, 0.05]))
        v1.key.theta.copy_(mem.key.theta)
        mem.value.load_state_dict(v1.value.state_dict())
        v2.c_proj.weight.copy_(v1.c_proj.weight)
    x = torch.randn(2, 19, cfg.n_embd, dtype=torch.float64)
    assert_close(v2(x), v1(x), rtol=1e-12, what="v2 path, switches off")


@pytest.mark.parametrize("name", SWITCHES)
def test_fast_equals_reference_forward_and_backward(name):
    model = build(**SWITCHES[name]).double()
    model.train()  # m drawn per call: the same draw for both (same seed)
    ref = copy.deepcopy(model).set_impl("reference")
    # every layer with two paths is switched (the v2 layers were once missed, so this compared fast with fast)
    assert {m.impl for m in ref.modules() if hasattr(m, "impl")} == {"reference"}
    idx = torch.randint(0, 256, (2, 20))
    torch.manual_seed(5)
    y = model(idx)
    torch.manual_seed(5)
    y_ref = ref(idx)
    assert_close(y, y_ref, rtol=1e-10, what="forward")
    up = torch.randn_like(y)
    (y * up).sum().backward()
    (y_ref * up).sum().backward()
    for (n, p), p_ref in zip(model.named_parameters(), ref.parameters()):
        assert_close(p.grad, p_ref.grad, rtol=1e-9, scale=grad_scale(ref), what=n)


@pytest.mark.parametrize("name", SWITCHES)
def test_causal(name):
    model = build(**SWITCHES[name])
    idx = torch.randint(0, 256, (1, 20))
    idx2 = idx.clone()
    idx2[0, 11] = (idx2[0, 11] + 1) % 256
    a, b = model(idx), model(idx2)
    assert torch.equal(a[:, :11], b[:, :11])
    assert not torch.equal(a[:, 11:], b[:, 11:])


@pytest.mark.parametrize("name", SWITCHES)
def test_cached_decoding_equals_full_forward_token_by_token(name):
    # 20 tokens with h = 5 and m = 3: decoding crosses the short-term window edge (t = 5) and the offset (t = 3).
    model = build(**SWITCHES[name]).double()
    idx = torch.randint(0, 256, (2, 20))
    full = model(idx)
    logits, cache = model.prefill(idx[:, :2])
    assert_close(logits, full[:, :2], rtol=1e-10, what="prefill")
    for t in range(2, 20):
        step = model.decode_step(idx[:, t:t + 1], cache)
        assert_close(step, full[:, t:t + 1], rtol=1e-10, what=f"step {t}")


def test_generate_with_cache_equals_without():
    model = build(**SWITCHES["v2"])
    prompt = torch.randint(0, 256, (1, 3))
    a = model.generate(prompt, 15, temperature=0.0)
    b = model.generate(prompt, 15, temperature=0.0, use_cache=False)
    assert torch.equal(a, b)


def test_long_offset_drawn_in_training_fixed_at_inference():
    cmem = build(**SWITCHES["v2"]).blocks[0].cmem
    cmem.train()
    draws = {cmem.long_offset() for _ in range(200)}
    assert draws == set(range(3, 10))
    cmem.eval()
    assert {cmem.long_offset() for _ in range(20)} == {3}
    fixed = build(**SWITCHES["fixed-m"]).blocks[0].cmem.train()
    assert {fixed.long_offset() for _ in range(20)} == {3}


def test_long_term_memory_reads_only_past_the_offset():
    # With only a long-term memory at m = 6, the first 6 positions read nothing: the C-mem adds exactly 0 there.
    model = build(long_offset=6)
    cmem = model.blocks[0].cmem
    x = torch.randn(1, 12, 32)
    y = cmem(x)
    assert torch.equal(y[:, :6], torch.zeros_like(y[:, :6]))
    assert (y[:, 6:].abs().amax(-1) > 0).all()


def _old_v2_init(seed, cfg):
    """What `v2_init=True, init="gpt2"` built before init="v2": the gpt2 model, then v2's redraw (layers/v2_init.py)."""
    torch.manual_seed(seed)
    model = MemoryMosaic(cfg.replace(init="gpt2"))
    v2_init_(model)
    return model.eval()


@pytest.mark.parametrize("name", ["no-long", "v2"])
def test_init_v2_is_the_old_v2_init_with_gpt2_bit_for_bit(name):
    cfg = MosaicConfig.preset("tiny", **TINY, **SWITCHES[name])
    assert cfg.init == "v2"
    new, old = build(seed=3, **SWITCHES[name]), _old_v2_init(3, cfg)
    assert new.logit_scale == old.logit_scale == 1.0  # v2's head: unscaled, as gpt2's
    for (k, a), b in zip(new.state_dict().items(), old.state_dict().values()):
        assert torch.equal(a, b), k
    idx = torch.randint(0, 256, (2, 20))
    assert torch.equal(new(idx), old(idx))
    assert not torch.equal(new.wte.weight, build(seed=3, **dict(SWITCHES[name], init="gpt2")).wte.weight)


def test_configs_saved_with_v2_init_load_as_init_v2():
    saved = MosaicConfig.preset("small-v2", n_layer=2).to_dict()
    saved.update(init="gpt2", v2_init=True)  # how small-v2 was saved before init="v2"
    cfg = config_from_dict(saved)
    assert cfg == MosaicConfig.preset("small-v2", n_layer=2) and cfg.init == "v2"
    # v2_init with the Library head: a trained model's weights and logits depend on the head scale alone.
    assert config_from_dict({**saved, "init": "library"}).init == "library"
    assert config_from_dict({**saved, "init": "gpt2", "v2_init": False}).init == "gpt2"
    with pytest.raises(ConfigError, match="unknown MosaicConfig key 'v2_init'"):
        MosaicConfig.preset("tiny", v2_init=True)  # a new config names its init with `init`
    with pytest.raises(ConfigError, match="init must be one of library, gpt2, got 'v2'"):
        TransformerConfig(init="v2")  # v2's init is the Memory Mosaic's


@pytest.mark.parametrize("name", list(SWITCHES))
def test_reset_parameters_restores_every_per_head_scalar(name):
    """reset_parameters reaches every tensor of the v2 memories (the gated key extractor's bandwidth θ included:
    it was left as it stood, e.g. trained or uninitialised after building on the meta device)."""
    model = build(**SWITCHES[name])
    fresh = {n: p.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.reset_parameters()
    for n, p in model.named_parameters():
        if n.endswith("gamma") or p.dim() >= 2:  # random draws: redrawn (test_mosaic.py checks v1 the same way)
            assert not torch.equal(p, fresh[n] + 1.0), n
        else:
            assert torch.equal(p, fresh[n]), n


def test_v2_init_scales():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("small-v2", n_layer=2, vocab_size=512))
    d = 128
    for layer in range(2):
        w = model.blocks[layer].cmem.memories["short"].key.proj.weight
        sigma = 1 / math.sqrt(2 * d * (layer + 1))
        assert abs(w.std().item() / sigma - 0.986) < 0.05  # a ±3σ truncated normal has std 0.986σ
        assert w.abs().max().item() <= 3 * sigma
        w2 = model.blocks[layer].pmem.c_proj.weight
        sigma2 = 1 / math.sqrt(2 * w2.shape[1] * (layer + 1))
        assert abs(w2.std().item() / sigma2 - 0.986) < 0.05
    assert abs(model.wte.weight.std().item() * math.sqrt(2 * d) - 0.986) < 0.05
    assert model.blocks[0].cmem.memories["long"].value.scale().eq(1.0).all()


def test_presets_and_parameter_counts():
    small = MosaicConfig.preset("small-v2")
    assert (small.short_window, small.long_offset, small.long_offset_min, small.long_offset_max) == (64, 16, 16, 64)
    assert small.ffn == "swiglu" and small.uses_v2_memory
    assert MemoryMosaic(small).num_params() == 1_516_832
    with torch.device("meta"):
        paper = MemoryMosaic(MosaicConfig.preset("paper-v2"))
    assert paper.blocks[0].pmem.w1.out_features == 6144
    assert sum(p.numel() for p in paper.parameters()) == PAPER_V2_PARAMS


PAPER_V2_PARAMS = 1_616_221_952  # 1,312,657,280 without the long-term memory


@pytest.mark.parametrize("bad", [dict(short_window=1), dict(long_offset=-1), dict(long_offset_min=2, long_offset_max=5),
                                 dict(long_offset=3, long_offset_min=6, long_offset_max=5)])
def test_bad_v2_config(bad):
    with pytest.raises(ConfigError):
        MosaicConfig.preset("tiny", **bad)


LENGTHS = [13, 6, 1, 9]  # real tokens per left-padded row: past h = 5 and m = 3


def _left_padded(seed=0):
    g = torch.Generator().manual_seed(seed)
    T = max(LENGTHS)
    idx = torch.randint(0, 256, (len(LENGTHS), T), generator=g)  # random pad ids: they must not matter
    mask = torch.arange(T)[None, :] >= torch.tensor([T - n for n in LENGTHS])[:, None]
    return idx, mask


@pytest.mark.parametrize("name", ["v2", "no-long", "adaptive", "appc-window", "shared-heads"])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_left_padded_rows_equal_rows_alone(name, impl):
    model = build(**SWITCHES[name], impl=impl).double()
    idx, mask = _left_padded()
    out = model(idx, mask)
    for i, n in enumerate(LENGTHS):
        assert_close(out[i:i + 1, -n:], model(idx[i:i + 1, -n:]), rtol=1e-10, what=f"row {i}")


def test_padded_fast_equals_reference_forward_and_backward():
    fast = build(**SWITCHES["v2"]).double()
    ref = copy.deepcopy(fast).set_impl("reference")
    idx, mask = _left_padded(seed=1)
    mask[0, 7] = False  # an interior hole too
    w = torch.randn(*idx.shape, 256, dtype=torch.float64) * mask[..., None]
    y, y_ref = fast(idx, mask), ref(idx, mask)
    assert_close(y, y_ref, rtol=1e-10, what="logits")
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, rtol=1e-9, scale=grad_scale(ref), what=f"grad {n}")


@pytest.mark.parametrize("name", ["v2", "appc-window"])
def test_padded_prefill_and_decode_equal_rows_alone(name):
    model = build(**SWITCHES[name]).double()
    idx, mask = _left_padded(seed=2)
    new = torch.randint(0, 256, (len(LENGTHS), 6))
    assert_padded_decoding_is_each_row_alone(model, idx, mask, LENGTHS, new)


def test_pad_keys_are_never_read():
    # Changing the pad ids (and so the last pad's value, which peeks at the first real token) changes nothing.
    model = build(**SWITCHES["v2"]).double()
    idx, mask = _left_padded(seed=3)
    other = torch.where(mask, idx, (idx + 7) % 256)
    assert torch.equal(model(idx, mask)[mask], model(other, mask)[mask])


def test_window_conventions_read_h_minus_1_or_h_pairs():
    eq10, appc = (build(short_window=5, window_convention=c).blocks[0].cmem for c in ("eq10", "appc"))
    assert eq10.lags()["short"] == (1, 4) and appc.lags()["short"] == (1, 5)


def test_long_offset_per_forward_is_shared_by_the_layers():
    model = build(**SWITCHES["m-per-forward"], n_layer=3).train()
    seen = []
    for block in model.blocks:
        block.cmem.register_forward_pre_hook(lambda mod, args: seen.append(mod.lags()["long"][0]))
    for _ in range(30):
        seen.clear()
        model(torch.randint(0, 256, (1, 12)))
        assert len(set(seen)) == 1 and 3 <= seen[0] <= 9
    assert all(b.cmem.shared_m is None for b in model.blocks)  # cleared after the pass
    per_layer = build(**SWITCHES["v2"], n_layer=3).train()
    draws = [tuple(b.cmem.long_offset() for b in per_layer.blocks) for _ in range(30)]
    assert any(len(set(d)) > 1 for d in draws)  # the default: each layer its own m


def test_shared_heads_have_one_gate_and_one_bandwidth():
    mem = build(**SWITCHES["shared-heads"]).blocks[0].cmem.memories["short"]
    assert mem.key.gate.out_features == mem.key.decay.out_features == 1 and mem.theta_alpha.shape == (1,)
    per_head = build(**SWITCHES["v2"]).blocks[0].cmem.memories["short"]
    assert per_head.key.gate.out_features == 2 and per_head.theta_alpha.shape == (2,)


@pytest.mark.parametrize("bad", [dict(window_convention="app"), dict(long_offset_draw="step")])
def test_bad_ablation_values(bad):
    with pytest.raises(ConfigError):
        MosaicConfig.preset("tiny", **bad)
