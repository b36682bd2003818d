"""The leaky average of the past: the key extractor's time constant.

    y_t = x_t + λ_h · y_{t-1},   y_0 = x_0,   λ_h = exp(-b_h),   b_h ≥ 0

`x` is laid out (B, H, T, D) and `b` is (H,), one decay rate per head.

Implementations, equal to float tolerance:
- `leaky_average_reference`: the T×T lower-triangular matrix exp(-b (t-i)) applied to x — the Library's
  "regular" version. O(T²) time and memory; the readable definition the others are tested against.
- `leaky_average_chunked`: a chunked scan. Inside a chunk of C steps it applies the C×C matrix; the state carried
  from chunk to chunk obeys the *same* recurrence with decay b·C, so it is computed by calling
  `leaky_average_chunked` recursively on the chunk-end states. O(T·C) time and memory, differentiable by plain
  autograd through matmuls, no exp(+b t) growth so no overflow at any length.
- `scan_htk`: the same chunked scan without autograd on an (H, T, K) layout — no permutes inside, the intra-chunk
  step one broadcast matmul, the carried states added in place — forward or reverse in time (transposed matrix,
  no flips). The CPU scan of `_LeakyAverage`.
- `_LeakyAverage` (what `leaky_average` runs when a gradient is needed): the scan with a hand-written backward:
  the adjoint of a leaky average is the same average run backwards in time, a_t = g_t + λ a_{t+1}, and
  ∂L/∂b_h = -λ_h Σ a_t y_{t-1}. One scan forward and one backward instead of autograd through ~20 small ops, and
  only y is saved. The scans are the fused kernel of ops/leaky_average_triton.py on CUDA with Triton, else
  `scan_htk`.
- `leaky_average`: dispatches — `_LeakyAverage` under autograd, the bare scan otherwise.
- `leaky_average_step`: one step of the recurrence, for cached generation.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .first_order import first_order

DEFAULT_CHUNK = 16  # 16-32 measured fastest on CPU at T 256-1024 (scan_htk, forward + backward)


def _decay_matrix(b: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(H, n, n) matrix M[h, t, i] = exp(-b_h (t - i)) for i ≤ t, else 0, cast to `dtype`.

    Lags and the causal mask come from an integer arange and exp runs in at least float32: in bf16 the positions
    themselves would round (257 -> 256), and the mask would let a position read the future."""
    pos = torch.arange(n, device=b.device)
    lag = pos[:, None] - pos[None, :]  # (n, n), t - i, exact
    causal = lag >= 0
    # Masked lags are clamped to 0 before exp so their gradient is finite (they are zeroed anyway).
    wide = torch.promote_types(dtype, torch.float32)  # float32, or float64 for float64 inputs
    m = torch.exp(-b.to(wide)[:, None, None] * lag.clamp_min(0).to(wide))
    return (m * causal).to(dtype)


def leaky_average_reference(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reference: y = M x with the full T×T decay matrix. x: (B, H, T, D), b: (H,)."""
    return _decay_matrix(b, x.shape[-2], x.dtype) @ x  # (H, T, T) @ (B, H, T, D)


def leaky_average_chunked(x: torch.Tensor, b: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Chunked O(T) leaky average. x: (B, H, T, D), b: (H,) with b ≥ 0, chunk ≥ 2. Returns (B, H, T, D)."""
    if chunk < 2:
        raise ValueError(f"chunk must be ≥ 2 (the carry recursion shortens the sequence by chunk), got {chunk}")
    B, H, T, D = x.shape
    if T <= chunk:
        return _decay_matrix(b, T, x.dtype) @ x
    n_chunks = -(-T // chunk)
    pad = n_chunks * chunk - T
    if pad:  # zeros appended at the end cannot change earlier outputs
        x = F.pad(x, (0, 0, 0, pad))
    # Within each chunk, as if the state entering the chunk were zero: one (C×C) @ (C × B·N·D) matmul per head.
    # (A broadcast matmul over (B, N) would be B·N tiny GEMMs and a reduction in the backward pass.)
    xc = x.reshape(B, H, n_chunks, chunk, D).permute(1, 3, 0, 2, 4).reshape(H, chunk, B * n_chunks * D)
    inner = torch.bmm(_decay_matrix(b, chunk, x.dtype), xc)  # (H, C, B·N·D)
    inner = inner.view(H, chunk, B, n_chunks, D).permute(2, 0, 3, 1, 4)  # (B, H, N, C, D)
    # State entering chunk n: S_{n-1}, where S_n = inner_n[C-1] + exp(-b C) S_{n-1}: a leaky average with decay b·C.
    ends = inner[:, :, :, -1]  # (B, H, N, D)
    carried = leaky_average_chunked(ends, b * chunk, chunk)  # S_n for n = 0..N-1
    carried = F.pad(carried[:, :, :-1], (0, 0, 1, 0))  # S_{n-1}; nothing enters chunk 0
    # A state entering a chunk has decayed by exp(-b (c+1)) at offset c.
    wide = torch.promote_types(x.dtype, torch.float32)
    offs = torch.arange(1, chunk + 1, device=x.device).to(wide)
    entry_decay = torch.exp(-b.to(wide)[:, None] * offs).to(x.dtype)  # (H, C)
    y = inner + entry_decay[None, :, None, :, None] * carried[:, :, :, None, :]
    y = y.reshape(B, H, n_chunks * chunk, D)
    return y[:, :, :T] if pad else y


def scan_plan(b: torch.Tensor, T: int, chunk: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Every decay `scan_htk` needs for length T, built in a handful of ops rather than ~10 per recursion level:
    level l scans chunk totals with decay b·C^l. Returns (M (L, H, C, C) the `_decay_matrix` of each level — the
    last level's length n ≤ C uses its leading n×n block —, E (L, H, C) the decay exp(-b_l (c+1)) from a chunk's
    entering state to its row c). In at least float32, cast to `dtype` (positions from an integer arange)."""
    levels, n = 1, T
    while n > chunk:
        n, levels = -(-n // chunk), levels + 1
    wide = torch.promote_types(dtype, torch.float32)
    constants = _plan_constants.__wrapped__ if _tracing(b) else _plan_constants  # a tracer's tensors: not cached
    powers, lag, causal, offsets = constants(chunk, levels, wide, b.device)
    rate = powers[:, None] * b.to(wide)  # (L, H)
    m = torch.exp(-rate[..., None, None] * lag) * causal
    e = torch.exp(-rate[..., None] * offsets)
    return m.to(dtype), e.to(dtype)


def _tracing(b: torch.Tensor) -> bool:
    """Under a fake-tensor or functionalisation trace (non-strict torch.export, fake-tensor memory estimators,
    torch.func.functionalize) the tensors made are the tracer's: cached, they would break every later real call.
    A tensor subclass b (fake, functional, ...) counts as a trace too. These are private torch APIs: where one is
    missing (another torch version) the answer is "tracing", which only skips the cache (same plan, rebuilt)."""
    try:
        from torch._guards import detect_fake_mode

        return (type(b) not in (torch.Tensor, torch.nn.Parameter) or torch._is_functional_tensor(b)
                or detect_fake_mode(b) is not None
                or torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FUNCTIONAL) is not None)
    except (ImportError, AttributeError):
        return True


@functools.lru_cache(maxsize=64)
def _plan_constants(chunk: int, levels: int, wide: torch.dtype, device: torch.device):
    """`scan_plan`'s b-independent tensors, built once per (chunk, levels, dtype, device): the powers C^l (L,), the
    lags t - i clamped at 0 (C, C), the causal mask (C, C) and the offsets c + 1 (C,). Positions come from an integer
    arange (exact), then are cast to `wide`."""
    with torch.inference_mode(False), torch.no_grad():
        pos = torch.arange(chunk, device=device)
        lag = pos[:, None] - pos[None, :]  # (C, C), t - i, exact
        powers = torch.tensor([float(chunk) ** i for i in range(levels)], dtype=wide, device=device)
        return powers, lag.clamp_min(0).to(wide), lag >= 0, (pos + 1).to(wide)


def scan_htk(x: torch.Tensor, b: torch.Tensor, chunk: int = DEFAULT_CHUNK, reverse: bool = False,
             plan: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The leaky average along dim 1 of an (H, T, K) tensor (K: every other column, e.g. batch × features),
    without autograd; reverse: run from t = T-1 down to 0. The CPU scan of `_LeakyAverage`.

    The same chunked algorithm as `leaky_average_chunked`, laid out so that nothing is permuted inside: the
    intra-chunk step is one broadcast matmul (H, 1, C, C) @ (H, N, C, K) — H·N GEMMs of C × C by C × K — and
    the carried states are added in place. The reverse scan uses the transposed matrices and carries from the
    chunk after, so the backward pass needs no flips. `plan`: `scan_plan(b, T, chunk, x.dtype)`, computed here
    when not given (the forward and backward of one call share it)."""
    H, T, K = x.shape
    m, e = plan if plan is not None else scan_plan(b, T, chunk, x.dtype)
    if reverse:
        m, e = m.transpose(-1, -2), e.flip(-1)  # Σ_{i≥t} λ^{i-t}; the state from the next chunk is C - c away
    return _scan_levels(x, m, e, chunk, reverse)


def _scan_levels(x: torch.Tensor, m: torch.Tensor, e: torch.Tensor, chunk: int, reverse: bool) -> torch.Tensor:
    H, T, K = x.shape
    if T <= chunk:
        return torch.matmul(m[0, :, :T, :T] if not reverse else m[0, :, -T:, -T:], x)
    n = -(-T // chunk)
    if n * chunk != T:  # zeros appended at the end change neither direction's outputs at t < T
        x = F.pad(x, (0, 0, 0, n * chunk - T))
    y = torch.matmul(m[0][:, None], x.view(H, n, chunk, K))  # (H, N, C, K)
    # State entering each chunk: the scan, with decay b·C, of the chunk totals (last row; first in reverse).
    ends = _scan_levels(y[:, :, 0 if reverse else -1], m[1:], e[1:], chunk, reverse)  # (H, N, K)
    entry = e[0][:, None, :, None]  # (H, 1, C, 1)
    if reverse:  # chunk n receives the state of chunk n+1
        y[:, :-1].addcmul_(entry, ends[:, 1:, None, :])
    else:
        y[:, 1:].addcmul_(entry, ends[:, :-1, None, :])
    return y.view(H, n * chunk, K)[:, :T]


def _scan(x: torch.Tensor, b: torch.Tensor, chunk: int, reverse: bool = False, plan=None) -> torch.Tensor:
    """The leaky average of x (B, H, T, D) without autograd (reverse: from t = T-1 down to 0): the Triton kernel
    on CUDA when available, else `scan_htk` on an (H, T, B·D) copy (returned as a (B, H, T, D) view of it)."""
    if x.is_cuda and _triton_ok():
        from .leaky_average_triton import triton_scan

        return triton_scan(x, b, reverse)
    B, H, T, D = x.shape
    with torch.no_grad():
        x3 = x.permute(1, 2, 0, 3).reshape(H, T, B * D)
        return scan_htk(x3, b, chunk, reverse, plan).view(H, T, B, D).permute(2, 0, 1, 3)


def _per_head_lag_dot(a: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Σ_{b, t≥1, d} a_t y_{t-1} per head, for (B, H, T, D) a and y, summed in `dtype`."""
    B, H, T, D = a.shape
    a3, y3 = a.permute(1, 2, 0, 3), y.permute(1, 2, 0, 3)
    if a3.is_contiguous() and y3.is_contiguous() and a.dtype == dtype:  # scan_htk's layout: H dot products
        return torch.bmm(a3.reshape(H, 1, -1)[..., B * D:], y3.reshape(H, -1, 1)[:, :-B * D]).view(H)
    # An elementwise product and a reduction: einsum("bhtd,bhtd->h") ran as a slow GEMV on an H100
    # (0.7 ms per layer at B 4, H 12, T 2048, D 64 in bf16).
    return (a[:, :, 1:] * y[:, :, :-1]).sum(dim=(0, 2, 3), dtype=dtype)


class _LeakyAverage(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
        # The CPU scan's decay matrices, built once for both passes.
        ctx.plan = None if x.is_cuda and _triton_ok() else scan_plan(b.detach(), x.shape[2], chunk, x.dtype)
        y = _scan(x, b.detach(), chunk, plan=ctx.plan)
        ctx.save_for_backward(y, b)
        ctx.chunk = chunk
        return y

    @staticmethod
    @first_order
    def backward(ctx, g: torch.Tensor):
        y, b = ctx.saved_tensors
        a = _scan(g, b.detach(), ctx.chunk, reverse=True, plan=ctx.plan)  # a_t = ∂L/∂x_t = g_t + λ a_{t+1}
        gb = None
        if ctx.needs_input_grad[1]:
            wide = torch.promote_types(y.dtype, torch.float32)
            # ∂L/∂λ_h = Σ_{b,t≥1,d} a_t y_{t-1}; ∂λ/∂b = -λ. Summed in at least float32.
            dlam = _per_head_lag_dot(a, y, wide)
            gb = (-torch.exp(-b.to(wide)) * dlam).to(b.dtype)
        return a, gb, None


def leaky_average(x: torch.Tensor, b: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """O(T) leaky average. x: (B, H, T, D), b: (H,) with b ≥ 0, chunk ≥ 2. Returns (B, H, T, D).

    `_LeakyAverage` (one scan forward, one reverse scan backward): the Triton kernel on CUDA when it imports,
    else `scan_htk` (CPU, and CUDA without Triton). On CPU it measured 2.2 vs 4.6 ms forward + backward
    against autograd through `leaky_average_chunked` at chunk 64 (B 8, T 256, H 4, D 32, one thread).
    On CPU the result is a view laid out (H, T, B, D) in memory (what the next op reads fastest): `.contiguous()`
    before `.view`; under autograd it must not be modified in place. Double backward raises (first order only)."""
    if chunk < 2:
        raise ValueError(f"chunk must be ≥ 2 (the carry recursion shortens the sequence by chunk), got {chunk}")
    if torch.compiler.is_compiling() and not (x.is_cuda and _triton_ok()):
        return leaky_average_chunked(x, b, chunk)  # plain ops: torch.compile fuses them itself (see first_order.py)
    if torch.is_grad_enabled() and (x.requires_grad or b.requires_grad):
        return _LeakyAverage.apply(x, b, chunk)
    return _scan(x, b, chunk)


def _triton_ok() -> bool:
    from .leaky_average_triton import triton_available

    return triton_available()


def leaky_average_step(state: torch.Tensor | None, x_t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One step of the recurrence for decoding. state, x_t: (B, H, D) (or (B, H, 1, D)); b: (H,)."""
    if state is None:
        return x_t
    lam = torch.exp(-b.to(torch.promote_types(x_t.dtype, torch.float32))).to(x_t.dtype)
    lam = lam.view(-1, *([1] * (x_t.dim() - 2)))  # broadcast over (H, ..., D)
    return x_t + lam * state
