"""The Triton leaky-average kernel against the PyTorch reference, forward and backward.

On CUDA it runs the compiled kernel; on CPU the same kernel runs in Triton's interpreter when the test process
sets TRITON_INTERPRET=1 before importing triton (`TRITON_INTERPRET=1 pytest tests/ops/test_leaky_average_triton.py`).
Skipped (with the reason shown) when triton is not installed or neither is possible: it is an optional path.
"""

import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton not installed (optional GPU path)")

from memory_mosaics.ops.leaky_average import _LeakyAverage, leaky_average_reference  # noqa: E402
from memory_mosaics.ops.leaky_average_triton import triton_scan  # noqa: E402
from tests.helpers import assert_close  # noqa: E402

if torch.cuda.is_available():
    DEVICE = "cuda"
elif os.environ.get("TRITON_INTERPRET") == "1":
    DEVICE = "cpu"
else:
    pytest.skip("needs CUDA, or TRITON_INTERPRET=1 to run the kernel on CPU", allow_module_level=True)


@pytest.mark.parametrize("T", [1, 5, 64, 130, 257])
@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_matches_reference_float32(T, reverse):
    torch.manual_seed(T)
    x = torch.randn(2, 3, T, 40, device=DEVICE)  # D = 40: not a power of two, masked columns
    b = torch.tensor([0.01, 0.7, 6.0], device=DEVICE)
    xr = x.flip(2) if reverse else x
    expected = leaky_average_reference(xr.double(), b.double())
    expected = expected.flip(2) if reverse else expected
    assert_close(triton_scan(x, b, reverse=reverse, chunk=16), expected.float(), rtol=1e-5, what="kernel")


def test_kernel_reads_strided_input_and_bf16():
    torch.manual_seed(0)
    x = torch.randn(2, 100, 3, 32, device=DEVICE).transpose(1, 2)  # (B, H, T, D) view of (B, T, H, D)
    b = torch.tensor([0.1, 1.0, 3.0], device=DEVICE)
    expected = leaky_average_reference(x.double(), b.double())
    assert_close(triton_scan(x, b, chunk=16), expected.float(), rtol=1e-5, what="strided")
    yb = triton_scan(x.bfloat16(), b, chunk=16)
    assert yb.dtype == torch.bfloat16
    assert_close(yb.float(), expected.float(), rtol=2e-2, what="bf16")


def test_autograd_function_with_kernel_matches_reference_backward(monkeypatch):
    import importlib

    la = importlib.import_module("memory_mosaics.ops.leaky_average")  # the module, not the function

    # Route the Function's scans through the kernel even on CPU (interpreter).
    monkeypatch.setattr(la, "_scan", lambda x, b, chunk, reverse=False: triton_scan(x, b, reverse, chunk=16))
    torch.manual_seed(1)
    x = torch.randn(2, 3, 77, 8, device=DEVICE, requires_grad=True)
    b = torch.tensor([0.05, 0.9, 5.0], device=DEVICE, requires_grad=True)
    y = _LeakyAverage.apply(x, b, 16)
    xd, bd = x.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    y_ref = leaky_average_reference(xd, bd)
    assert_close(y, y_ref.float(), rtol=1e-5, what="forward")
    g = torch.randn_like(y)
    gx, gb = torch.autograd.grad(y, (x, b), g)
    gx_ref, gb_ref = torch.autograd.grad(y_ref, (xd, bd), g.double())
    assert_close(gx, gx_ref.float(), rtol=1e-5, what="grad x")
    assert_close(gb, gb_ref.float(), rtol=1e-4, what="grad b")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the dispatch to the kernel happens on CUDA only")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 1000, 2048])
def test_cuda_leaky_average_dispatch_forward_backward(T, dtype):
    from memory_mosaics.ops import leaky_average

    torch.manual_seed(T)
    x = torch.randn(2, T, 4, 64, device="cuda").transpose(1, 2).to(dtype).requires_grad_()
    b = torch.tensor([0.05, 0.5, 2.0, 5.0], device="cuda", requires_grad=True)
    y = leaky_average(x, b)
    assert y.grad_fn is not None and "LeakyAverage" in type(y.grad_fn).__name__
    xd, bd = x.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    y_ref = leaky_average_reference(xd, bd)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert_close(y.double(), y_ref, rtol=tol, what=f"forward {dtype}")
    g = torch.randn_like(y_ref)
    gx, gb = torch.autograd.grad(y, (x, b), g.to(dtype))
    gx_ref, gb_ref = torch.autograd.grad(y_ref, (xd, bd), g)
    assert_close(gx.double(), gx_ref, rtol=tol, what=f"grad x {dtype}")
    assert_close(gb.double(), gb_ref, rtol=10 * tol, what=f"grad b {dtype}")
