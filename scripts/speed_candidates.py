"""Issue 15's candidate speed-ups, each measured side by side in one process (interleaved, medians), CPU.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/speed_candidates.py [--compile]

Core case shapes: d 128, 4 heads (d_h 32), P 448; (batch 8, T 256) and (batch 2, T 1024). Times are forward +
backward in ms. What was kept and what was rejected is in the README's speed section / issue 15's note.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from memory_mosaics.layers import ContextMemory
from memory_mosaics.ops import key_dropout
from memory_mosaics.ops.leaky_average import _LeakyAverage, leaky_average_chunked

SHAPES = ((8, 256), (2, 1024))
H, P, DH = 4, 448, 32


def compare(title: str, fns: dict, repeats: int = 9) -> None:
    """fns: name -> () -> loss tensor; each timed forward + backward, interleaved; medians after 2 warm-ups."""
    times = {k: [] for k in fns}
    for r in range(repeats + 2):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f().backward()
            if r >= 2:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    first = next(iter(med.values()))
    print(f"{title:44s} " + "  ".join(f"{k} {1e3 * v:7.2f} ms ({first / v:.2f}x)" for k, v in med.items()))


def pmem_candidates(B: int, T: int) -> None:
    q = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    mk, mv = torch.randn(H, P, DH, requires_grad=True), torch.randn(H, P, DH, requires_grad=True)

    def expanded():  # the shipped path: SDPA over banks expanded (a view) to the batch
        return F.scaled_dot_product_attention(q, mk.expand(B, -1, -1, -1), mv.expand(B, -1, -1, -1), scale=1.0)

    def flat():  # all B·T queries of a head against its bank: one attention per head
        qh = q.transpose(0, 1).reshape(1, H, B * T, DH)
        return F.scaled_dot_product_attention(qh, mk[None], mv[None], scale=1.0)

    def bmm_softmax():  # one batched matmul + softmax + matmul per head (saves the (H, B·T, P) weights)
        qh = q.transpose(0, 1).reshape(H, B * T, DH)
        return torch.bmm(torch.softmax(torch.bmm(qh, mk.transpose(1, 2)), -1), mv)

    compare(f"P-mem recall B{B} T{T}", {k: (lambda f=f: f().sum()) for k, f in
                                        dict(sdpa_expanded=expanded, sdpa_flat=flat, bmm_softmax=bmm_softmax).items()})

    def drop(kind):
        def run():
            if kind == "sdpa_dropout":  # CPU SDPA with dropout_p > 0 leaves the fused kernel
                return F.scaled_dot_product_attention(q, mk.expand(B, -1, -1, -1), mv.expand(B, -1, -1, -1),
                                                      dropout_p=0.05, scale=1.0).sum()
            v = mv.expand(B, -1, -1, -1)
            v = key_dropout(v, 0.05) if kind == "key_dropout" else v
            return F.scaled_dot_product_attention(q, mk.expand(B, -1, -1, -1), v, scale=1.0).sum()
        return run

    compare(f"P-mem dropout 0.05 B{B} T{T}", {k: drop(k) for k in ("sdpa_dropout", "key_dropout", "no_dropout")})


def leaky_candidates(B: int, T: int) -> None:
    x = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    b = torch.tensor([0.5, 2.0, 3.0, 5.0], requires_grad=True)
    fns = {"chunked64_autograd": lambda: leaky_average_chunked(x, b, 64).sum(),
           "chunked32_autograd": lambda: leaky_average_chunked(x, b, 32).sum(),
           "fused_backward64": lambda: _LeakyAverage.apply(x, b, 64).sum()}
    compare(f"leaky average B{B} T{T}", fns)


def cmem_candidates(B: int, T: int) -> None:
    cfg = MosaicConfig.preset("small", vocab_size=256, block_size=T, dropout=0.0)
    torch.manual_seed(0)
    fused = ContextMemory(cfg)

    class TwoGemms(ContextMemory):
        def project(self, x):
            return self.key.project(x), self.value.project(x)

    two = TwoGemms(cfg)
    two.load_state_dict(fused.state_dict())
    x = torch.randn(B, T, 128, requires_grad=True)
    compare(f"C-mem layer B{B} T{T}", {"two_gemms": lambda: two(x).square().sum(),
                                       "one_gemm": lambda: fused(x).square().sum()})


def compile_candidates(B: int, T: int) -> None:
    over = dict(vocab_size=256, block_size=T, dropout=0.0)
    torch.manual_seed(0)
    mm = MemoryMosaic(MosaicConfig.preset("small", cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, **over))
    tf = Transformer(TransformerConfig.preset("small", **over))
    x = torch.randint(0, 256, (B, T))
    fns = {"transformer": tf, "mosaic": mm, "transformer_compiled": torch.compile(tf), "mosaic_compiled": torch.compile(mm)}
    compare(f"model fwd+bwd B{B} T{T} (ratios vs transformer)",
            {k: (lambda m=m: F.cross_entropy(m(x).flatten(0, 1), x.flatten())) for k, m in fns.items()}, repeats=7)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compile", action="store_true", help="also torch.compile both models (minutes on 2 cores)")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); (Nx) = first column's time / this one's")
    for B, T in SHAPES:
        pmem_candidates(B, T)
        leaky_candidates(B, T)
        cmem_candidates(B, T)
        if args.compile:
            compile_candidates(B, T)


if __name__ == "__main__":
    main()
