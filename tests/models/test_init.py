"""The two initialisation schemes (config `init`): distributions, initial loss, parameter counts, and checkpoints
written before the field existed (tests/fixtures/legacy_ckpt, made with the code of commit 5231b93)."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig, build_model, config_from_dict
from memory_mosaics.config import ConfigError
from memory_mosaics.training.checkpoint import load_weights
from tests.helpers import assert_close

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_ckpt"


def check_std(t: torch.Tensor, std: float, name: str) -> None:
    """Sample std within 3% and mean within 5 standard errors (tensors here have ≥ 4,096 entries: the sample
    std's relative error is ~1/√(2n) ≤ 1.1%, so 3% cannot flip on another machine's RNG stream)."""
    t = t.detach().double()
    assert t.numel() >= 4096, name
    assert abs(t.std().item() / std - 1) < 0.03, f"{name}: std {t.std().item():.5f}, expected {std:.5f}"
    assert abs(t.mean().item()) < 5 * std / math.sqrt(t.numel()), f"{name}: mean {t.mean().item():.3g}"


def expected_std(name: str, shape, init: str, d: int, n_layer: int, head_dim: int) -> float | None:
    """The std each scheme prescribes for a ≥ 2-D tensor (architecture.md §5, §7, §9)."""
    if name.endswith("_bank"):
        return 1 / math.sqrt(head_dim)
    if name in ("wte.weight", "wpe.weight"):
        return 0.02 if init == "gpt2" else 1 / math.sqrt(d)
    fan_in = shape[1]
    residual = name.endswith("c_proj.weight")
    if init == "gpt2":
        return 0.02 / math.sqrt(2 * n_layer) if residual else 0.02
    return 1 / math.sqrt(fan_in * (n_layer if residual else 1))


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
@pytest.mark.parametrize("init", ["library", "gpt2"])
def test_every_tensor_follows_its_scheme(kind, init):
    torch.manual_seed(0)
    if kind == "mosaic":  # the paper preset at 2 layers (width, heads and P as in the paper; small vocabulary)
        cfg = MosaicConfig.preset("paper", n_layer=2, vocab_size=512, init=init)
        model = MemoryMosaic(cfg)
    else:
        cfg = TransformerConfig.preset("small", init=init, vocab_size=512)
        model = Transformer(cfg)
    d, L = cfg.n_embd, cfg.n_layer
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            check_std(p, expected_std(name, p.shape, init, d, L, cfg.head_dim), name)
        elif name.endswith("rho"):
            assert_close(p, torch.linspace(0.5, 5.0, cfg.n_head) / 10, what=name)
        elif name.endswith("theta"):
            assert torch.all(p == torch.tensor(0.1)), name
        elif name.endswith("eta"):
            assert torch.all(p == torch.tensor(-0.05)), name
        elif name.endswith("gamma"):
            assert torch.all((p >= 0) & (p < 1)), name
        else:
            assert torch.all(p == 1), name  # LayerNorm weights
    assert model.logit_scale == (1.0 if init == "gpt2" else 1 / math.sqrt(d))


def test_paper_and_icll_presets_keep_the_library_init():
    assert MosaicConfig.preset("paper").init == "library" and MosaicConfig.preset("icll").init == "library"
    assert MosaicConfig().init == "library"  # the defaults are the paper's
    assert MosaicConfig.preset("small").init == "gpt2" and MosaicConfig.preset("tiny").init == "gpt2"
    assert all(TransformerConfig.preset(p).init == "gpt2" for p in TransformerConfig.PRESETS)  # the §7 baseline
    with pytest.raises(ConfigError, match="init must be one of"):
        MosaicConfig(init="xavier")


@pytest.mark.parametrize("kind", ["mosaic", "transformer"])
@pytest.mark.parametrize("init", ["library", "gpt2"])
def test_initial_loss_is_log_vocab(kind, init):
    V = 2048
    torch.manual_seed(0)
    cfg_cls = MosaicConfig if kind == "mosaic" else TransformerConfig
    model = build_model(cfg_cls.preset("small", vocab_size=V, init=init)).eval()
    idx = torch.randint(0, V, (4, 128))
    with torch.no_grad():
        loss = F.cross_entropy(model(idx).flatten(0, 1), torch.randint(0, V, (4 * 128,)))
    # ln V + var(logits)/2: logit std ≈ 0.02·√128 = 0.23 (gpt2) or 1/√d (library), so within 0.1 of ln V
    assert abs(loss.item() - math.log(V)) < 0.1, loss.item()


@pytest.mark.parametrize("ffn", ["pmem", "mlp", "swiglu"])
def test_parameter_count_and_state_dict_do_not_depend_on_init(ffn):
    a = MemoryMosaic(MosaicConfig.preset("tiny", ffn=ffn, init="library"))
    b = MemoryMosaic(MosaicConfig.preset("tiny", ffn=ffn, init="gpt2"))
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    assert a.num_params() == b.num_params()
    if ffn != "pmem":  # the ablation's feed-forward follows the scheme too
        std = b.blocks[0].pmem.c_proj.weight.std().item()
        assert abs(std / (0.02 / 2) - 1) < 0.1


@pytest.mark.parametrize("kind,init", [("mosaic", "library"), ("transformer", "gpt2")])
def test_checkpoint_from_before_the_field_loads_with_its_head(kind, init):
    folder = LEGACY / kind
    saved = json.loads((folder / "model_config.json").read_text())
    assert "init" not in saved  # the fixture really is from before the field
    config = config_from_dict(saved)
    assert config.init == init  # the head it was trained with, not today's preset default
    model = build_model(config).eval()
    load_weights(model, folder / "model.safetensors")
    expected = load_file(str(folder / "expected_logits.safetensors"))
    with torch.no_grad():
        logits = model(expected["idx"])
    assert_close(logits, expected["logits"], rtol=1e-5, what=f"{kind} logits")
    # and the saved config round-trips with the field from now on
    assert config_from_dict(config.to_dict()) == config


def test_layers_own_their_initialisation():
    """A layer built alone is initialised (no model-level pass needed) and reset_parameters redraws it."""
    from memory_mosaics.layers import PersistentMemory

    cfg = MosaicConfig.preset("paper", n_layer=2, init="gpt2")
    torch.manual_seed(0)
    layer = PersistentMemory(cfg)
    check_std(layer.c_proj.weight, 0.02 / 2, "c_proj")
    check_std(layer.query.proj.weight, 0.02, "query.proj")
    before = layer.key_bank.clone()
    with torch.no_grad():
        layer.eta.add_(1.0)
    layer.reset_parameters()
    assert torch.all(layer.eta == torch.tensor(-0.05)) and not torch.equal(layer.key_bank, before)
