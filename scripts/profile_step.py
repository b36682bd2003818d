"""Profile one training step (forward + backward + AdamW), Memory Mosaic vs transformer, core case.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/profile_step.py [--T 1024 --batch 2] [--rows 15]

Core case: 4 layers, d 128, 4 heads, vocab 256, attention dropouts off (the `small` preset at vocab 256).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig


def build(kind: str, T: int, vocab: int, device: str):
    torch.manual_seed(0)
    over = dict(vocab_size=vocab, block_size=T, dropout=0.0)
    if kind == "transformer":
        return Transformer(TransformerConfig.preset("small", **over)).to(device)
    return MemoryMosaic(MosaicConfig.preset("small", cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, **over)).to(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    x = torch.randint(0, args.vocab, (args.batch, args.T), device=args.device)
    for kind in ("mosaic", "transformer"):
        model = build(kind, args.T, args.vocab, args.device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = F.cross_entropy(model(x).flatten(0, 1), x.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=acts) as prof:
            step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
        print(f"\n=== {kind}  T={args.T} batch={args.batch}: {total:.1f} ms self CPU time in one step ===")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
