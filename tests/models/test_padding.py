"""Padding masks (left-padded batches, Hugging Face `attention_mask`): padding never enters a memory, a
leaky-average state or an attention read, so every real token computes what it computes without the padding."""

import pytest
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from tests.helpers import assert_close, assert_padded_decoding_is_each_row_alone, grad_scale

LENGTHS = [9, 5, 1, 7]  # real tokens per row


def _model(kind, **over):
    torch.manual_seed(0)
    if kind == "mosaic":
        return MemoryMosaic(MosaicConfig.preset("tiny", scan_chunk=4, **over)).double().eval()
    return Transformer(TransformerConfig.preset("tiny", **over)).double().eval()


def _left_padded(vocab, seed=0):
    """Rows of LENGTHS real tokens, left-padded with random (not constant) pad ids, and the mask."""
    g = torch.Generator().manual_seed(seed)
    T = max(LENGTHS)
    idx = torch.randint(0, vocab, (len(LENGTHS), T), generator=g)
    mask = torch.zeros(len(LENGTHS), T, dtype=torch.bool)
    for i, n in enumerate(LENGTHS):
        mask[i, T - n:] = True
    return idx, mask


@pytest.mark.parametrize("kind,over", [("mosaic", {}), ("mosaic", {"impl": "reference"}),
                                       ("mosaic", {"ffn": "mlp", "value_peek": False}), ("transformer", {})])
def test_left_padded_rows_equal_rows_alone(kind, over):
    model = _model(kind, **over)
    idx, mask = _left_padded(model.config.vocab_size)
    out = model(idx, mask)
    for i, n in enumerate(LENGTHS):
        alone = model(idx[i:i + 1, -n:])
        assert_close(out[i:i + 1, -n:], alone, rtol=1e-10, what=f"row {i}")


def test_mask_fast_matches_reference_forward_and_backward():
    fast = _model("mosaic")
    ref = _model("mosaic", impl="reference")
    ref.load_state_dict(fast.state_dict())
    idx, mask = _left_padded(fast.config.vocab_size, seed=1)
    mask[1, 6] = False  # an interior hole too
    w = torch.randn(*idx.shape, fast.config.vocab_size, dtype=torch.float64) * mask[..., None]
    (fast(idx, mask) * w).sum().backward()
    (ref(idx, mask) * w).sum().backward()
    assert_close(fast(idx, mask), ref(idx, mask), rtol=1e-10, what="logits")
    scale = grad_scale(ref)  # every gradient on the backward pass's scale: some can cancel to exactly zero
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, rtol=1e-9, scale=scale, what=f"grad {name}")


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
def test_no_mask_and_all_true_mask_are_the_unpadded_path(kind):
    model = _model(kind)
    idx = torch.randint(0, model.config.vocab_size, (2, 12))
    ref = model(idx)
    assert torch.equal(model(idx, None), ref)
    assert torch.equal(model(idx, torch.ones_like(idx)), ref)
    with pytest.raises(ValueError, match="padding mask"):
        model(idx, torch.ones(2, 11))


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
def test_padded_prefill_and_decode_equal_rows_alone(kind):
    model = _model(kind)
    idx, mask = _left_padded(model.config.vocab_size, seed=2)
    new = torch.randint(0, model.config.vocab_size, (len(LENGTHS), 4))
    assert_padded_decoding_is_each_row_alone(model, idx, mask, LENGTHS, new)
