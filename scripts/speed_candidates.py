"""Issue 15's candidate speed-ups, each measured side by side in one process (interleaved, medians), CPU.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/speed_candidates.py [--compile]

Core case shapes: d 128, 4 heads (d_h 32), P 448; (batch 8, T 256) and (batch 2, T 1024). Times are forward +
backward in ms of this process's CPU time (time.process_time: on a shared machine, wall time also counts the
time other processes held the core). What was kept and what was rejected is in the README's speed section.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from memory_mosaics.layers import ContextMemory
from memory_mosaics.ops import key_dropout, strict_past_retrieval
from memory_mosaics.ops.leaky_average import _LeakyAverage, leaky_average_chunked
from memory_mosaics.ops.normalize import scaled_l2_normalize, scaled_l2_normalize_reference
from memory_mosaics.ops.retrieval import shared_bank_retrieval

SHAPES = ((8, 256), (2, 1024))
H, P, DH = 4, 448, 32


def compare(title: str, fns: dict, repeats: int = 9) -> None:
    """fns: name -> () -> loss tensor; each timed forward + backward, interleaved; medians after 2 warm-ups."""
    times = {k: [] for k in fns}
    for r in range(repeats + 2):
        for k, f in fns.items():
            t0 = time.process_time()
            f().backward()
            if r >= 2:
                times[k].append(time.process_time() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    first = next(iter(med.values()))
    print(f"{title:44s} " + "  ".join(f"{k} {1e3 * v:7.2f} ms ({first / v:.2f}x)" for k, v in med.items()))


def pmem_candidates(B: int, T: int) -> None:
    q = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    mk, mv = torch.randn(H, P, DH, requires_grad=True), torch.randn(H, P, DH, requires_grad=True)

    def expanded():  # SDPA over banks expanded (a view) to the batch (the fast path before; kept for dropout)
        return F.scaled_dot_product_attention(q, mk.expand(B, -1, -1, -1), mv.expand(B, -1, -1, -1), scale=1.0)

    def flat():  # the shipped path: all B·T queries of a head against its bank, one attention per head
        return shared_bank_retrieval(q, mk, mv)

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
    g = torch.randn(B, H, T, DH)  # a gradient of full size (.sum()'s would be a broadcast constant)
    fns = {"chunked64_autograd": lambda: (leaky_average_chunked(x, b, 64) * g).sum(),
           "chunked16_autograd": lambda: (leaky_average_chunked(x, b, 16) * g).sum(),
           "scan_htk64": lambda: (_LeakyAverage.apply(x, b, 64) * g).sum(),
           "scan_htk32": lambda: (_LeakyAverage.apply(x, b, 32) * g).sum(),
           "scan_htk16": lambda: (_LeakyAverage.apply(x, b, 16) * g).sum()}
    compare(f"leaky average B{B} T{T}", fns)


def normalize_candidates(B: int, T: int) -> None:
    x = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    s, gamma = torch.rand(H, requires_grad=True), torch.rand(H, requires_grad=True)
    g = torch.randn(B, H, T, DH)
    compare(f"key normalisation B{B} T{T}", {"autograd": lambda: (scaled_l2_normalize_reference(x, s) * g).sum(),
                                            "function": lambda: (scaled_l2_normalize(x, s) * g).sum()})
    compare(f"value peek mix + normalisation B{B} T{T}",
            {"autograd": lambda: (scaled_l2_normalize_reference(x, s, gamma) * g).sum(),
             "function": lambda: (scaled_l2_normalize(x, s, gamma) * g).sum()})


def strict_past_candidates(B: int, T: int) -> None:
    k = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    v = torch.randn(B, T, H, DH).transpose(1, 2).requires_grad_()
    g = torch.randn(B, H, T, DH)
    sp = sys.modules["memory_mosaics.ops.strict_past"]
    flash = sp._cpu_flash_ops

    def run(use_function):
        sp._cpu_flash_ops = flash if use_function else (lambda: None)
        return (strict_past_retrieval(k, k, v) * g).sum()

    compare(f"C-mem strict-past read B{B} T{T}", {"autograd_slices": lambda: run(False),
                                                  "function": lambda: run(True)})
    sp._cpu_flash_ops = flash


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
    ap.add_argument("--compile-only", action="store_true", help="only the torch.compile comparison")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); (Nx) = first column's time / this one's")
    for B, T in SHAPES:
        if args.compile_only:
            compile_candidates(B, T)
            continue
        pmem_candidates(B, T)
        leaky_candidates(B, T)
        normalize_candidates(B, T)
        strict_past_candidates(B, T)
        cmem_candidates(B, T)
        if args.compile:
            compile_candidates(B, T)


if __name__ == "__main__":
    main()
