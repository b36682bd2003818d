"""The native CPU kernels (ops/cpu_kernels/) against the PyTorch fast paths, side by side in one process: the key path
and the value path, forward and backward, interleaved, medians of this process's CPU time.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/native_paths_speed.py [--repeats 30]

Inputs as the model passes them: (B, H, T, d_h) views of a (B, T, H, d_h) projection; the upstream gradient in the
output's own memory order (what the consumers return). Cases: B 8, T 256 and B 2, T 1,024; H 4, d_h 32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memory_mosaics.ops import cpu_kernels
from memory_mosaics.ops.key_path import _LeakyNormalize
from memory_mosaics.ops.native_paths import native_key_path, native_value_path
from memory_mosaics.ops.normalize import _ScaledL2Normalize


def fwd_bwd(fn, base, grad, params):
    """(forward s, backward s) of fn on a fresh (B, H, T, D) view of base."""
    B, T, HD = base.shape
    H = params[0].shape[0]
    x = base.view(B, T, H, HD // H).transpose(1, 2)
    t0 = time.process_time()
    y = fn(x, *params)
    t1 = time.process_time()
    g = torch.empty_like(y).copy_(grad)  # in y's memory order, outside the timing
    t2 = time.process_time()
    y.backward(g)
    t3 = time.process_time()
    for t in (base, *params):
        t.grad = None
    return t1 - t0, t3 - t2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if not cpu_kernels.available():
        raise SystemExit(f"native CPU kernels not available: {cpu_kernels.unavailable_reason()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); CPU time, medians of {args.repeats}")
    H, D = 4, 32
    for B, T in ((8, 256), (2, 1024)):
        torch.manual_seed(0)
        base = torch.randn(B, T, H * D, requires_grad=True)
        grad = torch.randn(B, H, T, D)
        b, s, gm = (torch.rand(H).mul(3).requires_grad_(), torch.rand(H).add(1).requires_grad_(),
                    torch.rand(H).requires_grad_())
        cands = {"key path native": (native_key_path, (b, s)),
                 "key path PyTorch": (lambda x, b, s: _LeakyNormalize.apply(x, b, s, 16), (b, s)),
                 "value path native": (native_value_path, (s, gm)),
                 "value path PyTorch": (_ScaledL2Normalize.apply, (s, gm))}
        times = {k: [] for k in cands}
        for r in range(args.repeats + 2):
            for k, (fn, params) in cands.items():
                t = fwd_bwd(fn, base, grad, params)
                if r >= 2:
                    times[k].append(t)
        print(f"B {B} T {T} H {H} d_h {D}: ms forward / backward / total")
        for k, v in times.items():
            f, bw, tot = (1e3 * statistics.median(x) for x in ([a for a, _ in v], [c for _, c in v],
                                                                [a + c for a, c in v]))
            print(f"  {k:19s} {f:6.3f} {bw:6.3f} {tot:6.3f}")


if __name__ == "__main__":
    main()
