"""What `mosaic inspect` shows, for a language-model checkpoint or a three-moons run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..plots import loss_curves, retrieval_maps
from .memories import context_retrievals, head_table, persistent_recalls
from .report import Report, constants_figure, top_retrieved


def inspect_language_model(model, tokenizer, text: str, out: Path, data_tokens: np.ndarray | None = None,
                           max_tokens: int = 48, name: str = "model") -> Path:
    from ..models import MemoryMosaic

    if not isinstance(model, MemoryMosaic):
        raise ValueError("retrieval maps exist only for Memory Mosaics; this checkpoint holds a "
                         f"{type(model).__name__} (use `mosaic eval` for its per-position loss)")
    ids = tokenizer.encode(text)[:max_tokens]
    if len(ids) < 2:
        raise ValueError(f"--text must give at least 2 tokens, got {len(ids)}")
    labels = [tokenizer.decode([i]) for i in ids]
    idx = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    report = Report(f"Memory Mosaic inspection: {name}", out)
    report.paragraph(f"Input ({len(ids)} tokens): {text[:300]!r}")

    report.heading("Context-memory retrieval, per layer and head")
    report.paragraph("Row t shows how strongly the query at t read each stored pair j < t: the key at j summarises "
                     "the recent past up to j, the value peeks at token j+1. Row 0 reads nothing.")
    retrievals = context_retrievals(model, idx)
    summary = {"tokens": labels, "layers": []}
    for r in retrievals:
        w = r.weights[0].float().cpu().numpy()
        report.figure(retrieval_maps(w, f"layer {r.layer}", labels=labels), f"retrieval_layer{r.layer}",
                      f"layer {r.layer}: retrieval weights per head (query t on the y axis, stored pair j on x)")
        report.table(top_retrieved(w, labels + [""]), f"layer {r.layer}: top retrieved past positions per token")
        summary["layers"].append({"layer": r.layer, "weights": w.round(4).tolist()})

    report.heading("Learned time scales and bandwidths")
    rows = head_table(model)
    report.figure(constants_figure(rows), "head_constants", "per-head key time constant 1/b and bandwidth β across layers")
    report.table(rows, "per-head constants (time constants in tokens; β = s²; γ = weight of x_t vs x_{t+1} in values)")
    summary["heads"] = rows

    report.heading("Persistent-memory slots")
    recalls = persistent_recalls(model, idx)
    slot_rows = []
    for rec in recalls:
        w, slots = rec.top_slots(3)
        for t in range(len(ids)):
            heads = "; ".join(f"h{h}: " + ", ".join(f"{int(s)} ({float(x):.2f})" for s, x in zip(slots[0, h, t], w[0, h, t]))
                              for h in range(slots.shape[1]))
            slot_rows.append({"layer": rec.layer, "t": t, "token": labels[t], "top slots (weight)": heads})
    report.table(slot_rows, "which persistent-memory slots fire for each token (top 3 per head)")

    if data_tokens is not None:
        from ..evaluation import per_position_loss

        report.heading("Per-position loss on --data")
        bs = model.config.block_size
        curves, results = {}, {}
        for context in (bs, 2 * bs):
            if len(data_tokens) <= context + 1:
                continue
            pl = per_position_loss(model, data_tokens, context, n_batches=4, batch_size=4)
            curves[f"context {context}"] = pl.per_position
            results[context] = pl.to_dict()
        if curves:
            report.figure(loss_curves(curves, block_size=bs), "per_position_loss", "next-token loss against position in the context")
            summary["per_position_loss"] = results
        else:
            report.paragraph("--data is shorter than the training context: no per-position loss.")
    return report.write(summary)


def inspect_moons(run_dir: Path, out: Path, steps: int = 400, seed: int = 0) -> Path:
    from ..moons.data import VAL_TRIPLE, to_steps, triple_windows
    from ..moons.experiment import load_model

    model = load_model(run_dir)
    x = triple_windows(VAL_TRIPLE, 1, np.random.default_rng(seed), block=steps)[0]
    w = context_retrievals(model, x)[0].weights[0].numpy()  # (H, T, T)
    periods = [to_steps(p) for p in VAL_TRIPLE]
    report = Report(f"Three-moons memory ({model.n_head} head{'s' if model.n_head > 1 else ''}): {run_dir}", out)
    report.paragraph(f"Validation triple {list(VAL_TRIPLE)}: periods {', '.join(f'{p:.1f}' for p in periods)} steps. "
                     "Dotted lines mark pairs exactly one period back.")
    report.figure(retrieval_maps(w, "retrieval weights per head", stripes=periods), "retrieval_moons",
                  "per-head retrieval over past steps on a validation sequence")
    mags = {name: getattr(model, name).magnitude().detach().numpy() for name in ("key", "value", "out")}
    report.table([{"matrix": n, **{f"col {j}": float(m[i, j]) for j in range(m.shape[1])}, "row": i}
                  for n, m in mags.items() for i in range(m.shape[0])], "|complex entries| of W_φ (key), W_ψ (value), W_z (out)")
    return report.write({"periods_steps": periods, "weights": w.round(4).tolist()})
