"""The fast paths' hand-written backward passes are first-order only: asking for a second derivative raises a clear
error instead of a silently wrong number (a skip connection used to hide the missing term)."""

import pytest
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig
from memory_mosaics.ops.key_path import leaky_normalize
from memory_mosaics.ops.leaky_average import leaky_average, leaky_average_reference
from memory_mosaics.ops.normalize import scaled_l2_normalize
from memory_mosaics.ops.strict_past import strict_past_retrieval


def _inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.3, 1.0], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([1.5, 0.7], dtype=torch.float64, requires_grad=True)
    return x, b, s


FAST = {
    "leaky_average": lambda x, b, s: leaky_average(x, b, 2),
    "scaled_l2_normalize": lambda x, b, s: scaled_l2_normalize(x, s),
    "leaky_normalize": lambda x, b, s: leaky_normalize(x, b, s, 2),
    "strict_past_retrieval": lambda x, b, s: strict_past_retrieval(x, x, x * 2.0),
}


@pytest.mark.parametrize("name", FAST)
def test_double_backward_raises(name):
    x, b, s = _inputs()
    y = FAST[name](x, b, s) + x  # the skip connection that once hid the missing second-order term
    with pytest.raises(RuntimeError, match="first-order backward only"):
        torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)


@pytest.mark.parametrize("name", FAST)
def test_first_order_still_works(name):
    x, b, s = _inputs()
    (g,) = torch.autograd.grad(FAST[name](x, b, s).pow(2).sum(), x)
    assert torch.isfinite(g).all() and g.abs().max() > 0


def test_the_reference_path_has_second_derivatives():
    x, b, _ = _inputs()
    (g,) = torch.autograd.grad((leaky_average_reference(x, b) + x).pow(2).sum(), x, create_graph=True)
    (gb,) = torch.autograd.grad(g.pow(2).sum(), b)
    assert gb.abs().max() > 0


def test_gradient_penalty_on_a_model_names_the_way_out():
    cfg = MosaicConfig.preset("tiny", n_layer=1, dropout=0.0)
    idx = torch.randint(0, cfg.vocab_size, (1, 8))
    for impl in ("fast", "reference"):
        model = MemoryMosaic(cfg.replace(impl=impl))
        params = list(model.parameters())
        loss = model(idx).logsumexp(-1).mean()
        if impl == "fast":
            with pytest.raises(RuntimeError, match="impl='reference'"):
                torch.autograd.grad(loss, params, create_graph=True)
        else:
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            assert any(g is not None and g.requires_grad for g in grads)
