"""A key extractor's leaky average and scaled normalisation as one autograd Function (CPU fast path).

    k̄ = leaky_average(k̃, b)           (ops/leaky_average.py)
    k = s_h · k̄ / max(‖k̄‖, 1e-12)     (ops/normalize.py)

The same arithmetic as `scaled_l2_normalize(leaky_average(x, b), s)`; fused, the pair saves one tensor and two
passes: the normalisation is applied in place on the scan's output, the backward builds ∂L/∂k̄ directly in the
scan's (H, T, B·D) layout (the reverse scan then needs no copy), and ∂L/∂b reads k̄ back from k and ‖k̄‖
(k̄ = k · max(‖k̄‖, 1e-12)/s) instead of keeping k̄ — k is kept anyway by the retrieval that reads it.
"""

from __future__ import annotations

import torch

from .first_order import first_order
from .leaky_average import scan_htk, scan_plan
from .native_paths import native_key_path, native_ok
from .normalize import EPS


class _LeakyNormalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, scale, chunk):
        B, H, T, D = x.shape
        plan = scan_plan(b.detach(), T, chunk, x.dtype)
        with torch.no_grad():
            y = scan_htk(x.permute(1, 2, 0, 3).reshape(H, T, B * D), b.detach(), chunk, plan=plan)
            y = y.view(H, T, B, D)
            inv = torch.linalg.vector_norm(y, dim=-1, keepdim=True).clamp_min(EPS).reciprocal()  # (H, T, B, 1)
            k = y.mul_(scale.detach().to(y.dtype).view(H, 1, 1, 1) * inv)  # in place: k̄ is not kept
        ctx.plan, ctx.chunk = plan, chunk
        ctx.save_for_backward(k, inv, b, scale)
        return k.permute(2, 0, 1, 3)  # (B, H, T, D) view

    @staticmethod
    @first_order
    def backward(ctx, grad):
        k, inv, b, scale = ctx.saved_tensors  # k (H, T, B, D)
        H, T, B, D = k.shape
        s = scale.to(k.dtype).view(H, 1, 1, 1)
        g = grad.permute(1, 2, 0, 3)  # (H, T, B, D), in whatever order it came
        c = (k * g).sum(-1, keepdim=True)  # s · k̂·g
        above = inv < 1.0 / EPS  # below the floor the norm is constant: no projection term
        # ∂L/∂k̄ = inv·s·g − k·(c·inv/s), written in the scan's layout
        gbar = torch.empty_like(k)
        torch.mul(g, s * inv, out=gbar)
        gbar.addcmul_(k, torch.where(above, c * inv / s, 0.0), value=-1.0)
        a = scan_htk(gbar.view(H, T, B * D), b.detach(), ctx.chunk, reverse=True, plan=ctx.plan)  # ∂L/∂x
        gb = gs = None
        wide = torch.promote_types(k.dtype, torch.float32)
        if ctx.needs_input_grad[1]:  # ∂L/∂λ = Σ a_t k̄_{t-1}, k̄ = k / (s·inv); ∂λ/∂b = -λ
            a4 = a.view(H, T, B, D)
            dots = (a4[:, 1:] * k[:, :-1]).sum(-1, keepdim=True, dtype=wide)  # (H, T-1, B, 1)
            dlam = (dots / (s * inv[:, :-1]).to(wide)).sum(dim=(1, 2, 3))
            gb = (-torch.exp(-b.to(wide)) * dlam).to(b.dtype)
        if ctx.needs_input_grad[2]:  # ∂L/∂s = Σ k̂·g = Σ c / s
            gs = (c.sum(dim=(1, 2, 3), dtype=wide) / scale.to(wide)).to(scale.dtype)
        return a.view(H, T, B, D).permute(2, 0, 1, 3), gb, gs, None


def leaky_normalize(x: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, chunk: int) -> torch.Tensor:
    """s_h · Norm(leaky_average(x, b)) for x (B, H, T, D), b and scale (H,): the CPU fast path of a key extractor
    (float32/float64; callers use the separate ops elsewhere). On the native kernel (ops/native_paths.py) when it
    is built: a (B, H, T, D) view of an (H, B, T, D) tensor; otherwise this Function: a view of (H, T, B, D)."""
    if chunk < 2:
        raise ValueError(f"chunk must be ≥ 2 (the carry recursion shortens the sequence by chunk), got {chunk}")
    if native_ok(x):
        return native_key_path(x, b, scale)
    return _LeakyNormalize.apply(x, b, scale, chunk)
