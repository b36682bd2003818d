"""Figures: generation error vs context, per-head retrieval maps, |complex weight| maps. matplotlib (Agg)."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.memories import context_retrievals
from ..plots import pyplot, retrieval_maps, save
from .data import VAL_TRIPLE, joint_period, to_steps, triple_windows
from .evaluate import THRESHOLD

COLORS = {1: "tab:blue", 3: "tab:orange"}


def _period_lines(ax, triple, label=True):
    for p in triple:
        ax.axvline(to_steps(p), color="grey", lw=0.8, alpha=0.8)
    ax.axvline(to_steps(joint_period(triple)), color="red", lw=1.0)
    if label:
        ax.text(to_steps(joint_period(triple)), 0.97, " joint", color="red", fontsize=8, va="top",
                transform=ax.get_xaxis_transform())


def plot_errors(summaries: list[dict], path) -> None:
    """Error vs context: columns = train / val triple, rows = 5-step / 25-step error; colour = heads,
    line style = seed. The legend gives each run's 5-step context threshold on that triple."""
    seeds = sorted({s["seed"] for s in summaries})
    styles = {seed: ("-", "--", ":", "-.")[i % 4] for i, seed in enumerate(seeds)}
    fig, axes = pyplot().subplots(2, 2, figsize=(13, 8), sharex=True)
    for col, (split, name) in enumerate((("train", "train triple"), ("val", "held-out val triple"))):
        for row, n in enumerate((5, 25)):
            ax = axes[row, col]
            for s in summaries:
                ev, h = s[split], s["heads"]
                lab = f"{h} head{'s' if h > 1 else ''}, seed {s['seed']}: threshold {ev['context_threshold']}"
                ax.plot(ev["contexts"], ev[f"error_{n}"], color=COLORS.get(h), ls=styles[s["seed"]], lw=1.1,
                        label=lab)
            triple = summaries[0][split]["triple"]
            _period_lines(ax, triple)
            if n == 5:
                ax.axhline(THRESHOLD, color="k", lw=0.6, ls=":")
            ax.set_ylim(-0.02, 0.8 if n == 5 else 1.2)
            ax.set_title(f"{name} {triple}: {n}-step generation error", fontsize=10)
            ax.set_ylabel("mean |generated − true|")
        axes[1, col].set_xlabel("context length (steps); grey: moon periods, red: joint period")
        axes[0, col].legend(loc="upper right", fontsize=7)
    fig.suptitle(f"three moons: generation error vs context (seeds {seeds}); dotted black: 0.1")
    save(fig, path)


@torch.no_grad()
def plot_attention(model, path, seed: int = 0, triple=VAL_TRIPLE) -> None:
    """Per-head retrieval weights (√) on one val window, up to the joint period + 100 steps.
    Grey lines: the moons' periods; red: the joint period (rows = query step t, columns = key step j)."""
    x, _ = triple_windows(triple, 1, np.random.default_rng(seed))
    n = min(x.shape[1], int(to_steps(joint_period(triple))) + 100)
    att = context_retrievals(model, x[:, :n])[0].weights[0].numpy()  # (H, n, n)
    fig = retrieval_maps(att, f"{att.shape[0]}-head retrieval weights (√) on val triple {list(triple)}", sqrt=True,
                         rows=[to_steps(p) for p in triple], red_row=to_steps(joint_period(triple)))
    save(fig, path)


@torch.no_grad()
def plot_weights(model, path) -> None:
    """|complex entry| of W_φ (keys), W_ψ (values), W_z (output): 3×3 each (rows out, columns in = moons)."""
    fig, axes = pyplot().subplots(1, 3, figsize=(11, 3.4))
    for ax, (name, lin) in zip(axes, (("W_φ (key)", model.key), ("W_ψ (value)", model.value), ("W_z (out)", model.out))):
        im = ax.imshow(lin.magnitude().numpy(), cmap="viridis")
        ax.set_title(name)
        ax.set_xticks(range(3))
        ax.set_yticks(range(3))
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"{model.n_head}-head model: learned |complex weights|")
    save(fig, path)
