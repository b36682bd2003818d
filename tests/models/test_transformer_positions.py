"""Transformer baselines that run long: rotary positions and no positions."""

import pytest
import torch

from memory_mosaics import Transformer, TransformerConfig
from memory_mosaics.config import ConfigError
from memory_mosaics.ops.rotary import apply_rotary, rotary_angles
from tests.helpers import assert_close


def build(positions, seed=0, **kw):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig.preset("tiny", positions=positions, block_size=16, **kw)).eval()


def test_rotary_is_a_rotation_by_position_times_frequency():
    # Complex-number reference: pair (x1[i], x2[i]) as x1 + i·x2, multiplied by e^{i p θ_i}.
    x = torch.randn(1, 2, 7, 8, dtype=torch.float64)
    pos = torch.arange(7, dtype=torch.float64)
    cos, sin = rotary_angles(pos, 8)
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    z = torch.complex(x[..., :4], x[..., 4:]) * torch.exp(1j * pos[:, None] * theta)
    assert_close(apply_rotary(x, cos, sin), torch.cat([z.real, z.imag], dim=-1), rtol=1e-12)


def test_rotary_scores_depend_on_relative_position_only():
    q, k = torch.randn(2, 1, 1, 1, 16, dtype=torch.float64).unbind(0)
    def score(pq, pk):
        cq, sq = rotary_angles(torch.tensor([pq], dtype=torch.float64), 16)
        ck, sk = rotary_angles(torch.tensor([pk], dtype=torch.float64), 16)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()
    assert_close(score(10, 3), score(1007, 1000), rtol=1e-9)
    assert not torch.allclose(score(10, 3), score(10, 4))


@pytest.mark.parametrize("positions", ["rotary", "none"])
def test_no_table_and_parameter_count(positions):
    learned, other = build("learned"), build(positions)
    assert not hasattr(other, "wpe")
    assert other.num_params() == learned.num_params() - 16 * 32


@pytest.mark.parametrize("positions", ["rotary", "none"])
def test_runs_past_block_size_causal(positions):
    model = build(positions)
    idx = torch.randint(0, 256, (1, 40))  # 2.5× block_size
    idx2 = idx.clone()
    idx2[0, 25] = (idx2[0, 25] + 1) % 256
    a, b = model(idx), model(idx2)
    assert torch.equal(a[:, :25], b[:, :25]) and not torch.equal(a[:, 25:], b[:, 25:])


def test_learned_positions_still_refuse_long_inputs():
    with pytest.raises(ValueError, match="position table"):
        build("learned")(torch.randint(0, 256, (1, 17)))


@pytest.mark.parametrize("positions", ["rotary", "none"])
def test_cached_decoding_equals_full_forward_past_block_size(positions):
    model = build(positions).double()
    idx = torch.randint(0, 256, (2, 40))
    full = model(idx)
    logits, cache = model.prefill(idx[:, :3])
    assert_close(logits, full[:, :3], rtol=1e-10)
    for t in range(3, 40):
        assert_close(model.decode_step(idx[:, t:t + 1], cache), full[:, t:t + 1], rtol=1e-10, what=f"step {t}")
    prompt = idx[:, :2]
    assert torch.equal(model.generate(prompt, 30, temperature=0.0),
                       model.generate(prompt, 30, temperature=0.0, use_cache=False))


def test_rotary_left_padding_equals_prompt_alone():
    model = build("rotary").double()
    a = torch.randint(0, 256, (1, 9))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), a], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.bool), torch.ones(1, 9, dtype=torch.bool)], dim=1)
    assert_close(model(padded, mask=mask)[:, 3:], model(a), rtol=1e-10)
    logits, cache = model.prefill(padded, mask=mask)
    full = model(torch.cat([a, torch.tensor([[5]])], dim=1))
    assert_close(model.decode_step(torch.tensor([[5]]), cache), full[:, -1:], rtol=1e-10)


def test_bad_positions():
    with pytest.raises(ConfigError, match="positions"):
        TransformerConfig.preset("tiny", positions="alibi")


@pytest.mark.parametrize("positions,limit", [("learned", 16), ("rotary", None), ("none", None)])
def test_max_context_is_the_table_only(positions, limit):
    """Callers (generation, the compare / eval scorers, longctx) ask model.max_context whether it reads past T."""
    assert build(positions).max_context == limit


def test_rotary_generation_reads_the_whole_context_past_block_size():
    # Every greedy token is the argmax of the full, uncropped forward over all tokens before it (40 > block_size 16).
    # Weights × 20 sharpen attention: at the tiny init the argmax hardly depends on far tokens, cropped or not.
    model = build("rotary").double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0 if p.dim() >= 2 else 1.0)
    out = model.generate(torch.randint(0, 256, (2, 3)), 37, temperature=0.0)
    assert torch.equal(model(out[:, :-1]).argmax(-1)[:, 2:], out[:, 3:])
