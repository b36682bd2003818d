"""The gated, time-variant leaky average of Memory Mosaics v2 (Eq. 8): a decay that depends on the data.

    y_t = g_t x_t + λ_t y_{t-1},      y_{-1} = 0,      g_t > 0,   0 < λ_t ≤ 1

x is (B, H, T, D); the gate g and the decay λ are per-head scalars per position, (B, H, T). The decay is passed
in log space, `log_decay` = log λ ≤ 0 (the key extractor computes it as -|W_λ x_t| directly), so no log is taken.
With c_t = Σ_{s≤t} log λ_s the solution is

    y_t = Σ_{i≤t} exp(c_t - c_i) g_i x_i        (exp of a non-positive number: no overflow at any length)

- `gated_leaky_average_reference`: that T×T lower-triangular matrix applied to g·x. O(T²); the readable definition.
- `gated_leaky_average_loop`: the recurrence itself, one step at a time (a second, independent reference).
- `gated_leaky_average`: a chunked scan. Inside a chunk of C steps it applies the C×C matrix; the state carried from
  chunk to chunk obeys the same recurrence with gate 1 and log-decay = the chunk's sum of log λ, so it is computed by
  calling `gated_leaky_average` recursively on the chunk-end states. O(T·C), plain autograd (matmuls, cumsum, exp).
- `gated_leaky_average_step`: one step of the recurrence, for cached decoding.
With g ≡ 1 and log λ ≡ -b_h it is v1's leaky average (ops/leaky_average.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 64


def _decay_matrix(log_decay: torch.Tensor) -> torch.Tensor:
    """log_decay (..., n) -> (..., n, n) with M[t, i] = exp(c_t - c_i) for i ≤ t, else 0 (c = cumsum of log λ).
    Differences are formed before exp and the upper triangle is filled with -inf first, so nothing overflows and
    masked entries get a zero gradient."""
    wide = torch.promote_types(log_decay.dtype, torch.float32)
    c = torch.cumsum(log_decay.to(wide), dim=-1)
    n = c.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=c.device).tril()
    diff = (c[..., :, None] - c[..., None, :]).masked_fill(~causal, float("-inf"))
    return torch.exp(diff)


def _check(x: torch.Tensor, gate: torch.Tensor, log_decay: torch.Tensor) -> None:
    if gate.shape != x.shape[:-1] or log_decay.shape != x.shape[:-1]:
        raise ValueError(f"gate and log_decay must be shaped like x without its last dim {tuple(x.shape[:-1])}, "
                         f"got {tuple(gate.shape)} and {tuple(log_decay.shape)}")


def gated_leaky_average_reference(x: torch.Tensor, gate: torch.Tensor, log_decay: torch.Tensor) -> torch.Tensor:
    """Reference: y = M (g·x) with the full T×T matrix. x (B, H, T, D), gate/log_decay (B, H, T) -> (B, H, T, D)."""
    _check(x, gate, log_decay)
    return (_decay_matrix(log_decay).to(x.dtype) @ (gate[..., None] * x))


def gated_leaky_average_loop(x: torch.Tensor, gate: torch.Tensor, log_decay: torch.Tensor) -> torch.Tensor:
    """The recurrence, step by step (slow; for tests)."""
    _check(x, gate, log_decay)
    state, out = None, []
    for t in range(x.shape[-2]):
        state = gated_leaky_average_step(state, x[..., t, :], gate[..., t], log_decay[..., t])
        out.append(state)
    return torch.stack(out, dim=-2)


def gated_leaky_average(x: torch.Tensor, gate: torch.Tensor, log_decay: torch.Tensor,
                        chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Chunked O(T·C) scan. x (B, H, T, D), gate > 0 and log_decay ≤ 0 (B, H, T), chunk ≥ 2 -> (B, H, T, D)."""
    _check(x, gate, log_decay)
    if chunk < 2:
        raise ValueError(f"chunk must be ≥ 2 (the carry recursion shortens the sequence by chunk), got {chunk}")
    B, H, T, D = x.shape
    if T <= chunk:
        return gated_leaky_average_reference(x, gate, log_decay)
    N = -(-T // chunk)
    pad = N * chunk - T
    gx = gate[..., None] * x
    if pad:  # zero inputs appended at the end cannot change earlier outputs
        gx = F.pad(gx, (0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, pad))
    gx = gx.view(B, H, N, chunk, D)
    ld = log_decay.view(B, H, N, chunk)
    # Within each chunk, as if the state entering it were zero.
    inner = _decay_matrix(ld).to(x.dtype) @ gx  # (B, H, N, C, D)
    # State leaving chunk n: S_n = inner_n[C-1] + exp(Σ_chunk log λ) S_{n-1}: the same recurrence over chunks.
    wide = torch.promote_types(ld.dtype, torch.float32)
    local = torch.cumsum(ld.to(wide), dim=-1)  # (B, H, N, C), Σ log λ from the chunk start to offset c
    ends = gated_leaky_average(inner[:, :, :, -1], torch.ones_like(ld[..., -1]), local[..., -1].to(ld.dtype), chunk)
    carried = F.pad(ends[:, :, :-1], (0, 0, 1, 0))  # S_{n-1}; nothing enters chunk 0
    y = inner + torch.exp(local).to(x.dtype)[..., None] * carried[:, :, :, None, :]
    y = y.reshape(B, H, N * chunk, D)
    return y[:, :, :T] if pad else y


def gated_leaky_average_step(state: torch.Tensor | None, x_t: torch.Tensor, gate_t: torch.Tensor,
                             log_decay_t: torch.Tensor) -> torch.Tensor:
    """One step: y_t = g_t x_t + λ_t y_{t-1}. x_t (..., D), gate_t/log_decay_t (...); state like x_t or None."""
    y = gate_t[..., None] * x_t
    if state is None:
        return y
    lam = torch.exp(log_decay_t.to(torch.promote_types(x_t.dtype, torch.float32))).to(x_t.dtype)
    return y + lam[..., None] * state
