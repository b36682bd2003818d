"""Probes of the long-context harness for transformers (docs/long_context.md, "Is the harness at fault?").

1. Fixed-offset copy: with ONE fact right before the question (depth 1.0, so the code sits at a fixed distance from
   the answer) a 2-layer transformer must learn to copy it. This checks that the task generator, labels and
   exact-match scoring (longctx/task.py) work for transformers, whose 0 % on the real benchmark (random depths,
   several keys) is then a learning-budget result, not a harness bug.
2. `--template pair`: the MQAR layout inside the filler — fact " NAMENNNN.", question "\\nAnswer: NAME", one-byte names —
   so that a plain induction head (find the earlier NAME, copy what follows) answers it; random depths, several keys.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/longctx_sanity_probe.py 128 3000 --depth 1.0 --keys 1 --positions learned
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/longctx_sanity_probe.py 256 3000 --keys 4 --queries 4 --template pair
    (prints step, training loss, exact match on 64 test examples, time)

A plain AdamW loop (constant lr, batch 16, d 64, 2 layers, 4 heads): a probe, not the benchmark's training."""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from memory_mosaics.config import TransformerConfig
from memory_mosaics.longctx import task as T
from memory_mosaics.models import Transformer

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("length", type=int)
p.add_argument("steps", type=int)
p.add_argument("--depth", type=float, default=None, help="relative depth of the asked fact (default: uniform)")
p.add_argument("--keys", type=int, default=1, help="facts per example")
p.add_argument("--queries", type=int, default=1, help="questions per training example (scoring: the last)")
p.add_argument("--positions", default="rotary", choices=("learned", "rotary", "none"))
p.add_argument("--template", default="sentence", choices=("sentence", "pair"),
               help="sentence: the benchmark's ' The code of NAME is NNNN.'; pair: ' NAMENNNN.' (one-byte names)")
p.add_argument("--lr", type=float, default=3e-3)
a = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(0)
names = "single"
if a.template == "pair":  # the name right before the code, in the fact and at the end of the question
    names = "token"
    T.fact = lambda name, code, far=False: np.concatenate([T.encode(" "), T.encode(name), T.encode(f"{code}.")])
    T.question = lambda name, far=False: np.concatenate([T.encode("\nAnswer: "), T.encode(name)])
text = open("../shared/data/tinystories_train_head.txt", encoding="utf-8").read()
docs = [d.encode("ascii", "ignore").decode() for d in text.split("<|endoftext|>")[:3000]]
filler = T.Filler.from_documents(docs)
cfg = TransformerConfig.preset("tiny", vocab_size=256, block_size=a.length, n_layer=2, n_head=4, n_embd=64,
                               positions=a.positions, dropout=0.0)
model = Transformer(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
rng, t0 = np.random.default_rng(0), time.time()


def exact_match() -> float:
    model.eval()
    x, y, _ = T.make_batch(filler, 64, a.length, a.keys, a.depth, np.random.default_rng(1), names=names,
                           label_all=False)
    with torch.no_grad():
        logits = model(torch.tensor(x))
    model.train()
    return float(T.exact_match(logits, torch.tensor(y)).mean())


for step in range(a.steps):
    x, y, _ = T.make_batch(filler, 16, a.length, a.keys, a.depth, rng, names=names, n_queries=a.queries)
    logits = model(torch.tensor(x))
    loss = F.cross_entropy(logits.reshape(-1, 256), torch.tensor(y).reshape(-1), ignore_index=-100)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (step + 1) % 100 == 0:
        print(step + 1, round(loss.item(), 3), exact_match(), f"{time.time() - t0:.0f}s", flush=True)
