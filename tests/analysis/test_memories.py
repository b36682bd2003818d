import pytest
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig
from memory_mosaics.analysis import context_retrievals, head_table, persistent_recalls
from memory_mosaics.layers import ContextMemory
from tests.helpers import assert_close


def model_and_batch():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny", scan_chunk=8))
    with torch.no_grad():  # non-trivial constants
        for block in model.blocks:
            block.cmem.value.gamma.uniform_(0, 1)
            block.cmem.key.theta.uniform_(0.0, 0.3)
    return model, torch.randint(0, 256, (2, 30))


def test_retrieval_weights_reproduce_the_layer_output_and_sum_to_one():
    model, idx = model_and_batch()
    model.train()  # the analysis must switch to eval itself and restore the mode
    retrievals = context_retrievals(model, idx)
    assert model.training
    mems = [m for m in model.modules() if isinstance(m, ContextMemory)]
    assert len(retrievals) == len(mems) == 2
    for r, mem in zip(retrievals, mems):
        assert r.weights.shape == (2, 2, 30, 30)
        assert_close(r.reconstruct(mem), r.output, what=f"layer {r.layer}: weights x values = output")
        assert torch.equal(r.weights[:, :, 0], torch.zeros(2, 2, 30))
        assert_close(r.weights[:, :, 1:].sum(-1), torch.ones(2, 2, 29))
        assert torch.all(torch.triu(r.weights) == 0)


def test_reconstruction_detects_wrong_weights():
    model, idx = model_and_batch()
    r = context_retrievals(model, idx)[0]
    mem = next(m for m in model.modules() if isinstance(m, ContextMemory))
    r.weights = torch.roll(r.weights, 1, dims=-1)
    assert not torch.allclose(r.reconstruct(mem), r.output, atol=1e-4)


def test_persistent_slots_and_head_table():
    model, idx = model_and_batch()
    recalls = persistent_recalls(model, idx)
    assert len(recalls) == 2 and recalls[0].weights.shape == (2, 2, 30, 112)
    assert_close(recalls[0].weights.sum(-1), torch.ones(2, 2, 30))
    w, slots = recalls[0].top_slots(3)
    assert slots.shape == (2, 2, 30, 3) and torch.all(w[..., 0] >= w[..., 1])
    rows = head_table(model)
    assert len(rows) == 4
    # initial ρ = linspace(0.5, 5, H)/10: head 0 has b = 0.5 (2 tokens), head 1 b = 5 (0.2 tokens)
    assert rows[0]["cmem_time_constant"] == pytest.approx(2.0, rel=1e-5)
    assert rows[1]["cmem_time_constant"] == pytest.approx(0.2, rel=1e-5)
    assert rows[0]["cmem_gamma"] == float(model.blocks[0].cmem.value.gamma[0].detach())
