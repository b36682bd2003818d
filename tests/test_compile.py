import pytest
import torch
import torch.nn.functional as F

from memory_mosaics import MemoryMosaic, MosaicConfig
from tests.helpers import assert_close, grad_scale


@pytest.mark.slow  # inductor compiles C++ kernels: one to a few minutes on 2 cores
def test_torch_compile_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    model = MemoryMosaic(MosaicConfig.preset("tiny"))
    idx = torch.randint(0, 256, (2, 40))
    eager = model(idx)
    F.cross_entropy(eager.flatten(0, 1), idx.flatten()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model)
    out = compiled(idx)
    assert_close(out, eager, what="compiled forward")
    F.cross_entropy(out.flatten(0, 1), idx.flatten()).backward()
    scale = grad_scale(*grads.values())  # float32, fused kernels: each gradient on the backward pass's scale
    for n, p in model.named_parameters():
        assert_close(p.grad, grads[n], 1e-4, scale=scale, what=f"compiled grad {n}")
