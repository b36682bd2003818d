"""A Memory Mosaic's training step with the native CPU kernels (ops/cpu_kernels/) on and off (MEMORY_MOSAICS_NATIVE=0:
the PyTorch fast paths): the same loss and gradients to round-off."""

import pytest
import torch
import torch.nn.functional as F

from memory_mosaics import MemoryMosaic, MosaicConfig
from memory_mosaics.ops import cpu_kernels, key_path, normalize
from tests.helpers import assert_close, grad_scale

pytestmark = pytest.mark.skipif(not cpu_kernels.available(),
                                reason=f"native CPU kernels not available: {cpu_kernels.unavailable_reason()}")


def step(model, idx):
    model.zero_grad(set_to_none=True)
    logits = model(idx)
    F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, 1).flatten()).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_native_on_and_off_agree(monkeypatch, dtype, rtol):
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny", cmem_attn_dropout=0.0, pmem_attn_dropout=0.0)).to(dtype)
    idx = torch.randint(0, 256, (3, 41))
    calls = []
    monkeypatch.setattr(key_path, "native_key_path", lambda *a, f=key_path.native_key_path: calls.append(1) or f(*a))
    monkeypatch.setattr(normalize, "native_value_path",
                        lambda *a, f=normalize.native_value_path: calls.append(2) or f(*a))
    on = step(model, idx)
    assert 1 in calls and 2 in calls  # both kernels ran in the step
    monkeypatch.setenv(cpu_kernels.ENV, "0")
    calls.clear()
    off = step(model, idx)
    assert not calls
    assert_close(on[0], off[0], rtol, what="logits")
    scale = grad_scale(*off[1].values())
    assert set(on[1]) == set(off[1])
    for name in off[1]:
        assert_close(on[1][name], off[1][name], rtol, scale=scale, what=name)
