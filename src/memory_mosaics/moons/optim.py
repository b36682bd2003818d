"""The reference optimiser for the moons: MLX's AdamW, which has no bias correction, and its linear schedule.

    m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   p ← p·(1 − lr·wd) − lr·m/(√v + ε)

Without bias correction the first steps are ~(1−β₁)/√(1−β₂) ≈ 3× smaller than torch's AdamW; with torch's the
3-head model failed to disentangle on 2 of 3 seeds, so this is not a detail.
ε = 2e-8: the reference stores each complex entry twice (a in two places), so its gradients are half ours and
its ε = 1e-8 is matched by 2e-8 here.
"""

from __future__ import annotations

import torch


class MLXAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 2e-8, weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"bad MLXAdamW settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # MLX initialises both moments to zero
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                m, v, g = state["m"], state["v"], p.grad
                if wd:
                    p.mul_(1 - lr * wd)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(lr * m / (v.sqrt() + eps))
        return loss


def linear_decay(step: int, start: float = 1e-2, end: float = 5e-6, total: int = 500) -> float:
    """MLX `linear_schedule`: start at step 0, `end` from step `total` on."""
    if step >= total:
        return end
    return start + (end - start) * step / total
