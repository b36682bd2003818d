"""A guard for the fast paths' hand-written backward passes: they are first-order only.

Their backward is not itself differentiable, and autograd cannot always tell (`once_differentiable` drops the
second-order term without a word when `torch.autograd.grad` asks only for inputs behind a skip connection), so a
gradient penalty would be silently wrong. With create_graph=True grad mode is on inside backward: refuse there.

These Functions are eager-mode optimisations (fewer passes, chosen memory layouts). Under torch.compile their
dispatchers take the plain PyTorch ops instead (`torch.compiler.is_compiling()`): the compiler fuses those itself,
and its functionalisation does not preserve the layouts the hand-written backward passes rely on."""

from __future__ import annotations

import functools

import torch


def first_order(backward):
    """Decorate an autograd Function's backward: raise a clear error under create_graph=True."""

    @functools.wraps(backward)
    def guarded(ctx, *grads):
        if torch.is_grad_enabled():
            name = backward.__qualname__.split(".")[0]
            raise RuntimeError(f"{name}: the fast path has a first-order backward only (double backward / "
                               f"create_graph=True is not supported); build the model with impl='reference'")
        return backward(ctx, *grads)

    return guarded
