"""Per-head scaled L2 normalisation, optionally after the value extractor's one-step peek.

    y = s_h · u / max(‖u‖, 1e-12),     u = x                                   (keys, queries)
                                       u_t = γ_h x_t + (1 - γ_h) x_{t+1},  x_T := 0   (values: the peek mix)

x: (B, H, T, D) (or (B, H, ..., D) without the mix); s, γ: (H,). Computed in at least float32 (in fp16 the 1e-12
floor would round to 0, and a zero vector — the last value when γ = 0 — would give 0·inf = NaN).

- `scaled_l2_normalize_reference`: the plain autograd expression (the definition the fast path is tested against).
- `scaled_l2_normalize`: the fast path, on CPU the native kernel (ops/native_paths.py) when it is built, else an
  autograd Function with a hand-written backward. Autograd through the
  reference runs ~10 full-size passes (norm, clamp, two products, the norm's masked backward, a sum of two
  gradients); the backward of a normalisation has a closed form in the output y alone:

      ∂L/∂u = (s/n) (g − ŷ (ŷ·g)),  ŷ = y/s,      ∂L/∂s = Σ ŷ·g,      ∂L/∂γ = Σ ∂L/∂u · (x_t − x_{t+1})

  (below the 1e-12 floor n is constant, so the projection term drops). It saves y, 1/n and, with the mix, x.
"""

from __future__ import annotations

import torch

from .first_order import first_order
from .native_paths import native_ok, native_value_path

EPS = 1e-12


def per_head(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View an (H,) parameter so it broadcasts over a (B, H, ...) tensor."""
    return p.view(p.shape[0], *([1] * (like.dim() - 2)))


def _mix(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """u_t = γ x_t + (1 - γ) x_{t+1}, x_T := 0, along dim -2; γ already viewed per head."""
    u = x * gamma
    u[..., :-1, :].addcmul_(x[..., 1:, :], 1.0 - gamma)
    return u


def scaled_l2_normalize_reference(x: torch.Tensor, scale: torch.Tensor,
                                  gamma: torch.Tensor | None = None) -> torch.Tensor:
    """scale_h · Norm(x) for (B, H, ..., D) x and (H,) scale; with γ (H,), of the peek mix of x along time."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    if gamma is not None:
        g = per_head(gamma.to(xf.dtype), xf)
        x_next = torch.nn.functional.pad(xf[..., 1:, :], (0, 0, 0, 1))
        xf = x_next + g * (xf - x_next)
    # Folding the scale into the 1/‖x‖ factor makes it one full-size multiply.
    inv_norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).clamp_min(EPS).reciprocal()
    return (xf * (per_head(scale.to(xf.dtype), xf) * inv_norm)).to(x.dtype)


class _ScaledL2Normalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, gamma):
        wide = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(wide)
        g = per_head(gamma.detach().to(wide), xf) if gamma is not None else None
        u = _mix(xf, g) if g is not None else xf
        norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)  # (..., 1)
        inv = norm.clamp_min(EPS).reciprocal()
        s = per_head(scale.detach().to(wide), u)
        y = u.mul_(s * inv) if g is not None else u * (s * inv)  # the mix is our own buffer: scaled in place
        ctx.save_for_backward(y, inv, norm >= EPS, scale, xf if g is not None else None, gamma)
        return y.to(x.dtype)

    @staticmethod
    @first_order
    def backward(ctx, grad):
        y, inv, above, scale, xf, gamma = ctx.saved_tensors
        wide = y.dtype
        g = grad.to(wide)
        s = per_head(scale.to(wide), y)
        c = (y * g).sum(-1, keepdim=True)  # s · ŷ·g, (..., 1)
        reduce = tuple(i for i in range(y.dim()) if i != 1)  # every dim but the head
        gs = (c.sum(reduce) / scale.to(wide)).to(scale.dtype) if ctx.needs_input_grad[1] else None
        # ∂L/∂u = inv·(s g − y c/s²·s) = inv·s·g − y·(c·inv/s); the projection only above the floor.
        gu = (g * (s * inv)).addcmul_(y, torch.where(above, c * inv / s, 0.0), value=-1.0)
        gx = gg = None
        if gamma is not None:
            gm = per_head(gamma.to(wide), y)
            if ctx.needs_input_grad[2]:  # Σ gu_t (x_t − x_{t+1})
                d = (gu * xf).sum(reduce)
                d -= (gu[..., :-1, :] * xf[..., 1:, :]).sum(reduce)
                gg = d.to(gamma.dtype)
            if ctx.needs_input_grad[0]:  # u_t = γ x_t + (1-γ) x_{t+1}: x_t gets γ gu_t + (1-γ) gu_{t-1}
                gx = gu * gm
                gx[..., 1:, :].addcmul_(gu[..., :-1, :], 1.0 - gm)
        elif ctx.needs_input_grad[0]:
            gx = gu
        return (gx.to(grad.dtype) if gx is not None else None), gs, gg


def scaled_l2_normalize(x: torch.Tensor, scale: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
    """Fast path of `scaled_l2_normalize_reference` (same arguments, same result to round-off)."""
    if gamma is not None and x.dim() != 4:
        raise ValueError(f"the peek mix needs x laid out (B, H, T, D), got shape {tuple(x.shape)}")
    if torch.compiler.is_compiling():  # plain ops: torch.compile fuses them itself (see first_order.py)
        return scaled_l2_normalize_reference(x, scale, gamma)
    if native_ok(x):  # CPU, float32/64, (B, H, T, D): one pass each way (ops/native_paths.py)
        return native_value_path(x, scale, gamma)
    return _ScaledL2Normalize.apply(x, scale, gamma)
