"""The key path and the value path on the native CPU kernels (ops/cpu_kernels/): autograd Functions.

Same arithmetic as `ops.key_path._LeakyNormalize` and `ops.normalize._ScaledL2Normalize` (each tested against
the float64 reference), one pass per direction instead of ~10 passes of PyTorch ops. The dispatchers there call
these when `native_ok` says so (CPU, float32/float64, eager, the kernels built); otherwise the PyTorch paths run.

Memory orders, chosen by measuring the consumers (the kernels write through strides, so any order costs them the
same): keys are written (H, B, T, D) — key path + strict-past read forward + backward 45.7 ms against 47.5 ms for
(H, T, B, D), the PyTorch scan's order, at B 2, T 1,024 (18.1 vs 19.4 ms at B 8, T 256), key path + persistent
memory 25.9 vs 26.0 (25.1 vs 25.7) ms; `shared_bank_retrieval` flattens both without a copy. The whole step
(small preset, one thread): 367.1 vs 379.1 ms (vocab 256, B 2, T 1,024), 392.6 vs 402.2 ms (vocab 4,096, B 8,
T 256). Values are written (B, T, H, D) like their projection (SDPA's output order; the others measured within
noise or slower). Input gradients are written (B, T, H, D), the projection's own order, so split_heads' backward
and the linear layer's weight gradient read them without a copy. The kernels write ∂λ, ∂s and ∂γ per (b, h) row in
float64; the sums over b here make them the same bits whatever the thread count.
"""

from __future__ import annotations

import torch

from . import cpu_kernels
from .first_order import first_order


def native_ok(x: torch.Tensor) -> bool:
    """Whether x can take a native kernel: CPU, float32/float64, 4-D, eager, and the kernels available."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dim() == 4
            and not torch.compiler.is_compiling() and cpu_kernels.available())


def _rows(x: torch.Tensor) -> torch.Tensor:
    """x with its last dim contiguous (the kernels read every other dim through its stride)."""
    return x if x.stride(-1) == 1 or x.shape[-1] <= 1 else x.contiguous()


KEY_ORDER = (1, 0, 2, 3)  # keys in memory: (H, B, T, D)
VALUE_ORDER = GRAD_ORDER = (0, 2, 1, 3)  # values and input gradients: (B, T, H, D)


def _empty(like: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """An empty tensor shaped like `like` (B, H, T, D), its dims laid out in memory in `order` (outermost first)."""
    t = like.new_empty([like.shape[d] for d in order])
    return t.permute([order.index(d) for d in range(4)])


class _NativeKeyPath(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, scale):
        x = _rows(x)
        lam = torch.exp(-b.detach().double()).contiguous()
        s = scale.detach().double().contiguous()
        k = _empty(x, KEY_ORDER)
        norm = x.new_empty(x.shape[:3])  # ‖k̄_t‖ (B, H, T), for the backward
        torch.ops.memory_mosaics.key_path_forward(x, lam, s, k, norm)
        ctx.save_for_backward(k, norm, lam, s)
        ctx.dtypes = b.dtype, scale.dtype
        return k

    @staticmethod
    @first_order
    def backward(ctx, grad):
        k, norm, lam, s = ctx.saved_tensors
        B, H = k.shape[:2]
        gx = _empty(k, GRAD_ORDER)
        glam, gs = k.new_empty(B, H, dtype=torch.float64), k.new_empty(B, H, dtype=torch.float64)
        torch.ops.memory_mosaics.key_path_backward(_rows(grad), k, norm, lam, s, gx, glam, gs)
        gb = (-lam * glam.sum(0)).to(ctx.dtypes[0]) if ctx.needs_input_grad[1] else None  # ∂λ/∂b = −λ
        return gx, gb, gs.sum(0).to(ctx.dtypes[1]) if ctx.needs_input_grad[2] else None


class _NativeValuePath(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, gamma):
        x = _rows(x)
        s = scale.detach().double().contiguous()
        g = gamma.detach().double().contiguous() if gamma is not None else None
        y = _empty(x, VALUE_ORDER)
        norm = x.new_empty(x.shape[:3])
        torch.ops.memory_mosaics.value_path_forward(x, s, g, y, norm)
        ctx.save_for_backward(y, norm, x if g is not None else None, s, g)
        ctx.dtypes = scale.dtype, gamma.dtype if gamma is not None else None
        return y

    @staticmethod
    @first_order
    def backward(ctx, grad):
        y, norm, x, s, g = ctx.saved_tensors
        B, H = y.shape[:2]
        gx = _empty(y, GRAD_ORDER)
        gs, gg = y.new_empty(B, H, dtype=torch.float64), y.new_empty(B, H, dtype=torch.float64)
        torch.ops.memory_mosaics.value_path_backward(_rows(grad), y, norm, x if x is not None else y, s, g,
                                                     gx, gs, gg)
        gs = gs.sum(0).to(ctx.dtypes[0]) if ctx.needs_input_grad[1] else None
        gg = gg.sum(0).to(ctx.dtypes[1]) if g is not None and ctx.needs_input_grad[2] else None
        return gx, gs, gg


def _require() -> None:
    if not cpu_kernels.available():  # also what loads the library into torch.ops on a first call
        raise RuntimeError(f"the native CPU kernels are unavailable ({cpu_kernels.unavailable_reason()})")


def native_key_path(x: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """s_h · Norm(leaky_average(x, b)) for x (B, H, T, D), b and scale (H,), on the native kernel."""
    _require()
    return _NativeKeyPath.apply(x, b, scale)


def native_value_path(x: torch.Tensor, scale: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
    """scale_h · Norm(x), with γ of the peek mix of x along time, for x (B, H, T, D), on the native kernel."""
    _require()
    return _NativeValuePath.apply(x, scale, gamma)
