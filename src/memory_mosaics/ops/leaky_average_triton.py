"""Fused Triton kernels for the leaky average y_t = x_t + λ_h y_{t-1} (and its time reverse, the backward pass).

A chunked scan in the style of flash-linear-attention's `hgrn` kernels, in two launches:
1. `_local_scan`: grid (D blocks, chunks, B·H). Each program runs the recurrence over its BT positions from a zero
   state, in float32 registers, and writes the chunk-local result.
2. `_carry`: grid (D blocks, B·H). Each program walks the chunks in order and adds the state entering each chunk,
   decayed by λ^(offset+1), to every position of the chunk; the state leaving a chunk is its (now final) last row,
   carried in registers (float32, not rounded to the output dtype between chunks).
Reads x with any (B, H, T) strides as long as D is contiguous; writes a contiguous (B, H, T, D) result.

Only used on CUDA when `triton` imports (`triton_available()`); `ops/leaky_average.py` falls back to the PyTorch
chunked scan otherwise and is the reference the kernel is tested against (tests/ops/test_leaky_average_triton.py;
on CPU those tests run under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import functools

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # optional: the PyTorch path needs nothing from here
    triton = None


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _local_scan(x_ptr, y_ptr, b_ptr, T, H, D, sxb, sxh, sxt, REVERSE: tl.constexpr, BT: tl.constexpr,
                    BD: tl.constexpr):
        i_d, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
        cols = i_d * BD + tl.arange(0, BD)
        cmask = cols < D
        lam = tl.exp(-tl.load(b_ptr + i_h).to(tl.float32))
        x_base = x_ptr + i_b * sxb + i_h * sxh
        y_base = y_ptr + i_bh.to(tl.int64) * T * D
        h = tl.zeros([BD], dtype=tl.float32)
        for i in range(BT):
            if REVERSE:
                t = T - 1 - (i_c * BT + i)
            else:
                t = i_c * BT + i
            tt = t + tl.zeros([BD], dtype=tl.int32)  # a block, so the mask is a block of booleans
            m = cmask & (tt >= 0) & (tt < T)
            h = lam * h + tl.load(x_base + t * sxt + cols, mask=m, other=0.0).to(tl.float32)
            tl.store(y_base + t * D + cols, h.to(y_ptr.dtype.element_ty), mask=m)

    @triton.jit
    def _carry(y_ptr, b_ptr, T, H, D, NC, REVERSE: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
        i_d, i_bh = tl.program_id(0), tl.program_id(1)
        i_h = i_bh % H
        cols = i_d * BD + tl.arange(0, BD)
        cmask = cols < D
        b = tl.load(b_ptr + i_h).to(tl.float32)
        offs = tl.arange(0, BT)
        decay = tl.exp(-b * (offs + 1).to(tl.float32))  # λ^(offset+1): BT ≥ 1 so b = inf gives 0, not NaN
        y_base = y_ptr + i_bh.to(tl.int64) * T * D
        # The state entering chunk 1 is the last row chunk 0's local scan wrote (an earlier launch: visible).
        first = T - BT if REVERSE else BT - 1
        carry = tl.load(y_base + first * D + cols, mask=cmask, other=0.0).to(tl.float32)
        for i_c in range(1, NC):
            if REVERSE:
                ts = T - 1 - (i_c * BT + offs)
            else:
                ts = i_c * BT + offs
            m = (ts >= 0)[:, None] & (ts < T)[:, None] & cmask[None, :]
            ptrs = y_base + ts[:, None] * D + cols[None, :]
            y = tl.load(ptrs, mask=m, other=0.0).to(tl.float32) + decay[:, None] * carry[None, :]
            tl.store(ptrs, y.to(y_ptr.dtype.element_ty), mask=m)
            # The state leaving this chunk, kept in registers: re-reading it from memory would race with the
            # store above (other threads of this program write it, with no barrier in between).
            carry = tl.sum(tl.where((offs == BT - 1)[:, None], y, 0.0), axis=0)


def triton_scan(x: torch.Tensor, b: torch.Tensor, reverse: bool = False, chunk: int = 64) -> torch.Tensor:
    """Leaky average of x (B, H, T, D) with decay rates b (H,) ≥ 0, forward (reverse=False) or backward in time.
    No autograd: `ops.leaky_average` wraps it. Returns a contiguous tensor of x's dtype."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    B, H, T, D = x.shape
    if x.stride(-1) != 1:
        x = x.contiguous()
    y = torch.empty((B, H, T, D), dtype=x.dtype, device=x.device)
    b32 = b.detach().to(torch.float32).contiguous()
    BD = min(64, triton.next_power_of_2(D))
    BT = chunk
    NC = triton.cdiv(T, BT)
    _local_scan[(triton.cdiv(D, BD), NC, B * H)](x, y, b32, T, H, D, x.stride(0), x.stride(1), x.stride(2),
                                                 REVERSE=reverse, BT=BT, BD=BD)
    if NC > 1:
        _carry[(triton.cdiv(D, BD), B * H)](y, b32, T, H, D, NC, REVERSE=reverse, BT=BT, BD=BD)
    return y
