import copy
import math

import pytest
import torch
import torch.nn.functional as F

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from tests.helpers import assert_close, grad_scale


@pytest.mark.parametrize(
    "n_layer,mosaic,transformer", [(1, 45_713_748, 46_106_880), (2, 52_793_256, 53_186_304), (12, 123_588_336, 123_980_544)]
)
def test_paper_parameter_counts(n_layer, mosaic, transformer):
    with torch.device("meta"):  # counts without allocating 0.5 GB
        mm = MemoryMosaic(MosaicConfig.preset("paper", n_layer=n_layer))
        gpt = Transformer(TransformerConfig.preset("paper", n_layer=n_layer))
    assert sum(p.numel() for p in mm.parameters()) == mosaic
    assert sum(p.numel() for p in gpt.parameters()) == transformer


def test_icll_block_parameter_count():
    cfg = MosaicConfig.preset("icll")
    model = MemoryMosaic(cfg)
    d, P, H = 128, 448, 8
    per_block = 5 * d * d + 2 * P * d + 2 * d + 7 * H
    assert per_block == 196_920
    assert model.num_params() == cfg.vocab_size * d + cfg.n_layer * per_block + d


def test_tied_embedding_and_init():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("paper", n_layer=2, vocab_size=4096))
    d = 768
    assert abs(model.wte.weight.std().item() - 1 / math.sqrt(d)) < 1e-3
    cproj = model.blocks[0].cmem.c_proj.weight
    assert abs(cproj.std().item() - 1 / math.sqrt(d * 2)) < 1e-3
    phi = model.blocks[0].cmem.key.proj.weight
    assert abs(phi.std().item() - 1 / math.sqrt(d)) < 1e-3
    bank = model.blocks[1].pmem.key_bank
    assert abs(bank.std().item() - 1 / math.sqrt(64)) < 2e-3
    # initial loss on random targets ≈ ln(vocab)
    model.eval()
    idx = torch.randint(0, 4096, (2, 64))
    logits = model(idx)
    loss = F.cross_entropy(logits.flatten(0, 1), torch.randint(0, 4096, (128,)))
    assert abs(loss.item() - math.log(4096)) < 0.1


def perturb_at(idx, t, vocab):
    idx2 = idx.clone()
    idx2[:, t] = (idx2[:, t] + 1) % vocab
    return idx2


def tiny_models():
    torch.manual_seed(0)
    mm = MemoryMosaic(MosaicConfig.preset("tiny", scan_chunk=8)).eval()
    ref = copy.deepcopy(mm).set_impl("reference")
    gpt = Transformer(TransformerConfig.preset("tiny")).eval()
    return {"mosaic-fast": mm, "mosaic-reference": ref, "transformer": gpt}


@pytest.mark.parametrize("name", ["mosaic-fast", "mosaic-reference", "transformer"])
def test_causality(name):
    model = tiny_models()[name]
    torch.manual_seed(1)
    idx = torch.randint(0, 256, (2, 40))
    base = model(idx)
    for t in (0, 1, 17, 39):
        out = model(perturb_at(idx, t, 256))
        assert torch.equal(out[:, :t], base[:, :t]), f"changing token {t} changed earlier logits"
        assert not torch.allclose(out[:, t], base[:, t]), f"changing token {t} changed nothing at {t}"


@pytest.mark.parametrize("T", [40, 64, 150])  # 150 > block_size 64: longer than the training context
def test_fast_and_reference_models_agree(T):
    models = tiny_models()
    # float64: the paths differ by round-off only (~1e-16 of the magnitudes), 10^6 below rtol on any CPU.
    fast = models["mosaic-fast"].double().train()  # dropout is 0 in tiny
    ref = models["mosaic-reference"].double().train()
    torch.manual_seed(2)
    idx = torch.randint(0, 256, (2, T))
    targets = torch.randint(0, 256, (2, T))
    lf = F.cross_entropy(fast(idx).flatten(0, 1), targets.flatten())
    lr = F.cross_entropy(ref(idx).flatten(0, 1), targets.flatten())
    assert_close(lf, lr, 1e-10, what="loss")
    lf.backward()
    lr.backward()
    scale = grad_scale(ref)  # some gradients can cancel to ~0: measure each on the backward pass's scale
    for (name, pf), pr in zip(fast.named_parameters(), ref.parameters()):
        assert_close(pf.grad, pr.grad, 1e-9, scale=scale, what=f"grad {name}")


def test_mosaic_accepts_long_sequences_transformer_refuses():
    models = tiny_models()
    idx = torch.randint(0, 256, (1, 200))
    assert models["mosaic-fast"](idx).shape == (1, 200, 256)
    with pytest.raises(ValueError, match="exceeds the transformer's position table"):
        models["transformer"](idx)


@pytest.mark.parametrize("name", ["mosaic-fast", "transformer"])
@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.tensor([[1, 2, 256]]), "outside the vocabulary"),
        (torch.tensor([[1, -1, 2]]), "outside the vocabulary"),
        (torch.tensor([1, 2, 3]), "shape"),
        (torch.zeros(1, 3), "dtype"),
        (torch.zeros(1, 0, dtype=torch.long), "empty"),
        ([[1, 2]], "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(name, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_models()[name](bad)


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
def test_tiny_model_overfits_a_fixed_batch(kind):
    torch.manual_seed(0)
    if kind == "mosaic":
        model = MemoryMosaic(MosaicConfig.preset("tiny", vocab_size=32))
    else:
        model = Transformer(TransformerConfig.preset("tiny", vocab_size=32))
    data = torch.randint(0, 32, (4, 33))
    x, y = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(model.param_groups(0.0), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_param_groups_follow_reference_weight_decay():
    model = MemoryMosaic(MosaicConfig.preset("tiny"))
    decay, no_decay = model.param_groups(0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "wte.weight" in decayed and "blocks.0.pmem.key_bank" in decayed
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert "blocks.0.cmem.value.gamma" in {names[id(p)] for p in no_decay["params"]}
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_params()


def test_reset_parameters_restores_every_tensor():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny"))
    fresh = {n: p.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.manual_seed(0)
    model.reset_parameters()
    for n, p in model.named_parameters():
        if n.endswith("gamma") or p.dim() >= 2:  # random inits: same distribution, checked by range/std elsewhere
            assert not torch.equal(p, fresh[n] + 1.0), n
        else:
            assert_close(p, fresh[n], what=n)
