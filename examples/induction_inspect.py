"""Train a 1-layer Memory Mosaic on the induction-head task, save it as a `mosaic train`-style checkpoint, and
write the `mosaic inspect` report for one task sequence.

    .venv/bin/python examples/induction_inspect.py --corpus ../shared/data/tinyshakespeare.txt --out runs/induction-1L
    .venv/bin/mosaic inspect --checkpoint runs/induction-1L --text "$(cat runs/induction-1L/sequence.txt)" --out runs/induction-1L/inspect

Background: a bigram character stream in which 5 trigger characters are always followed by a per-sequence output
character. Predicting the output at a trigger's 2nd+ occurrence needs in-context copying. In a Memory Mosaic one
context memory does it: the query at a trigger (a key summarising "just saw q") matches the stored pair of
q's previous occurrence, whose value peeks at the character that followed it — the output.
The script prints, per head, the mean retrieval weight that queries at repeated triggers put on the previous
occurrence of the same trigger.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from memory_mosaics import MemoryMosaic, MosaicConfig
from memory_mosaics.analysis import context_retrievals
from memory_mosaics.analysis.inspect_run import inspect_language_model
from memory_mosaics.data.tokenizer import CharTokenizer
from memory_mosaics.icl.induction import Bigram, InductionTask, induction_metrics
from memory_mosaics.icl.train import Budget, train_stream
from memory_mosaics.training.checkpoint import save_checkpoint


def previous_occurrence_mass(weights: np.ndarray, x: np.ndarray, outs: np.ndarray) -> np.ndarray:
    """(H,) mean weight that queries at repeated triggers (outs ≥ 2) put on earlier occurrences of their own token
    (each of whose values peeks at the same output), against a uniform reader's share for comparison."""
    H, T, _ = weights.shape
    mass, n = np.zeros(H), 0
    for t in range(T):
        if outs[t] >= 2:
            earlier = [j for j in range(t) if x[j] == x[t]]
            mass += weights[:, t, earlier].sum(-1)
            n += 1
    return mass / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="../shared/data/tinyshakespeare.txt", help="text for the bigram background")
    ap.add_argument("--out", default="runs/induction-1L")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(args.seed)

    bigram = Bigram.from_text(Path(args.corpus).read_text(encoding="utf-8"))
    task = InductionTask(bigram, n_triggers=5, fixed_triggers=True, seq_len=args.seq_len)
    tok = CharTokenizer(bigram.itos)  # its ids are the bigram's + 1 (id 0 is end-of-text)
    cfg = MosaicConfig.preset("icll", n_layer=1, vocab_size=tok.vocab_size, block_size=args.seq_len,
                              dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0)
    model = MemoryMosaic(cfg)
    rng_test = np.random.default_rng(10_000 + args.seed)
    xt, yt, ot = (torch.from_numpy(a) for a in task.sample(128, rng_test))

    def sample(rng):
        x, y, _ = task.sample(args.batch, rng)
        return x + 1, y + 1

    def evaluate(m):
        return induction_metrics(m(xt + 1), yt + 1, ot)

    budget = Budget(name="example", steps=args.steps, lr=args.lr, warmup=args.steps // 10,
                    eval_every=max(1, args.steps // 6), val_subset=0, dropout=False, batch_size=args.batch)
    result = train_stream(model, sample, evaluate, budget, seed=args.seed)
    print(f"acc_end (repeated-trigger outputs) on 128 test sequences: {result['accuracy']:.3f}")

    save_checkpoint(out, args.steps, model_state=model.state_dict(), model_config=cfg.to_dict(),
                    tokenizer=tok.to_dict(), train_config={"example": "induction_inspect", **vars(args)},
                    state={"step": args.steps})
    # One test sequence as text, and the report for it.
    x0, o0 = xt[0].numpy(), ot[0].numpy()
    text = tok.decode(x0 + 1)
    (out / "sequence.txt").write_text(text, encoding="utf-8")
    w = context_retrievals(model.eval(), xt[:1] + 1)[0].weights[0].numpy()
    mass = previous_occurrence_mass(w, x0, o0)
    summary = {"acc_end": result["accuracy"], "earlier_occurrence_mass_per_head": mass.round(3).tolist()}
    uniform = np.mean([sum(x0[:t] == x0[t]) / t for t in range(1, len(x0)) if o0[t] >= 2])
    summary["uniform_reader_mass"] = round(float(uniform), 3)
    (out / "induction_summary.json").write_text(json.dumps(summary, indent=1))
    print("mean retrieval weight on earlier occurrences of the same trigger, per head:", np.round(mass, 3).tolist(),
          f"(a uniform reader: {uniform:.3f})")
    report = inspect_language_model(model, tok, text, out / "inspect", max_tokens=48, name="1-layer induction model")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
