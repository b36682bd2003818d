"""Sanity probe of the long-context harness for transformers: with ONE fact right before the question (depth 1.0,
so the code sits at a fixed distance from the answer) a 2-layer transformer must learn to copy it. It checks that
the task generator, labels and exact-match scoring (longctx/task.py) work for transformers, whose 0 % on the real
benchmark (random depths, several keys) is then a learning-budget result, not a harness bug.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/longctx_sanity_probe.py LENGTH STEPS DEPTH N_KEYS POSITIONS
    e.g.  ... 128 3000 1.0 1 learned      (prints step, training loss, exact match on 64 test examples, time)

A plain AdamW loop (lr 3e-3, batch 16, d 64, 2 layers, 4 heads): a probe, not the benchmark's training."""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from memory_mosaics.config import TransformerConfig
from memory_mosaics.longctx import task as T
from memory_mosaics.models import Transformer

torch.set_num_threads(1)
torch.manual_seed(0)
L, steps, depth, keys = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
positions = sys.argv[5] if len(sys.argv) > 5 else "rotary"
text = open("../shared/data/tinystories_train_head.txt", encoding="utf-8").read()
docs = [d.encode("ascii", "ignore").decode() for d in text.split("<|endoftext|>")[:3000]]
filler = T.Filler.from_documents(docs)
cfg = TransformerConfig.preset("tiny", vocab_size=256, block_size=L, n_layer=2, n_head=4, n_embd=64,
                               positions=positions, dropout=0.0)
model = Transformer(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
rng, t0 = np.random.default_rng(0), time.time()


def exact_match() -> float:
    model.eval()
    x, y, _ = T.make_batch(filler, 64, L, keys, depth, np.random.default_rng(1))
    with torch.no_grad():
        logits = model(torch.tensor(x))
    model.train()
    return float(T.exact_match(logits, torch.tensor(y)).mean())


for step in range(steps):
    x, y, _ = T.make_batch(filler, 16, L, keys, depth, rng)
    logits = model(torch.tensor(x))
    loss = F.cross_entropy(logits.reshape(-1, 256), torch.tensor(y).reshape(-1), ignore_index=-100)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (step + 1) % 100 == 0:
        print(step + 1, round(loss.item(), 3), exact_match(), f"{time.time() - t0:.0f}s", flush=True)
