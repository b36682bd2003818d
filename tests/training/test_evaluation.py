import numpy as np
import pytest
import torch
import torch.nn.functional as F

from memory_mosaics import MosaicConfig, TransformerConfig, build_model
from memory_mosaics.evaluation import fixed_starts, per_position_loss


@torch.no_grad()
def reference(model, data, context, starts):
    """Per-position loss one window at a time."""
    rows = []
    for s in starts:
        w = torch.tensor(data[s:s + context + 1].astype(np.int64))
        logits = model(w[None, :-1])[0]
        rows.append(F.cross_entropy(logits, w[1:], reduction="none"))
    return torch.stack(rows).mean(0)


@pytest.mark.parametrize("cls", [MosaicConfig, TransformerConfig])
def test_per_position_loss_matches_reference(cls):
    torch.manual_seed(0)
    model = build_model(cls.preset("tiny", vocab_size=50)).eval()
    data = np.random.default_rng(0).integers(0, 50, 3000).astype(np.uint16)
    res = per_position_loss(model, data, 32, n_batches=3, batch_size=4, seed=7)
    ref = reference(model, data, 32, fixed_starts(len(data), 32, 12, 7))
    assert res.per_position.shape == (32,) and res.tokens == 12 * 32
    np.testing.assert_allclose(res.per_position, ref.detach().numpy(), rtol=1e-5)  # losses ≈ ln 50, never ~0
    assert res.loss == pytest.approx(float(ref.mean()), rel=1e-5)
    assert res.perplexity == pytest.approx(np.exp(res.loss))


def test_long_context_mosaic_yes_transformer_no():
    data = np.random.default_rng(0).integers(0, 50, 2000).astype(np.uint16)
    mosaic = build_model(MosaicConfig.preset("tiny", vocab_size=50))
    assert per_position_loss(mosaic, data, 256, 1, 2).per_position.shape == (256,)  # 4× block_size
    gpt = build_model(TransformerConfig.preset("tiny", vocab_size=50))
    with pytest.raises(ValueError, match="block_size=64"):
        per_position_loss(gpt, data, 128, 1, 2)
    with pytest.raises(ValueError, match="fewer than context"):
        per_position_loss(mosaic, data[:100], 128, 1, 2)
