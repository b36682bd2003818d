"""Tables and figures for the ICL benchmarks, beside the published numbers."""

from __future__ import annotations

from pathlib import Path

from ..plots import pyplot

# MM paper Fig. 9 (read off the figure, ±0.01): N -> (MM acc, transformer acc, MM TVD, transformer TVD).
PUBLISHED_REGBENCH = {
    100: (0.925, 0.523, 0.569, 0.687),
    500: (0.929, 0.543, 0.254, 0.643),
    1000: (0.934, 0.535, 0.215, 0.63),
    2500: (0.941, 0.925, 0.185, 0.231),
    40000: (0.96, 0.95, 0.122, 0.144),
}
# In-context n-gram anchors on the official N=2500/T=1000 test split (§1.8): name -> (acc, TVD).
NGRAM_ANCHORS = {"unigram": (0.472, 0.633), "bigram": (0.830, 0.279), "trigram": (0.937, 0.196)}


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def regbench_table(results: dict, n_train: int, ngram: dict | None = None) -> str:
    """Markdown table: our accuracy / TVD per model, the paper's full-budget numbers and n-gram references.
    results: model name -> results.json dict."""
    pub = PUBLISHED_REGBENCH.get(n_train)
    rows = ["| model | steps | accuracy | TVD | paper accuracy | paper TVD |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        idx = 0 if name == "mosaic" else 1
        pa, pt = (pub[idx], pub[idx + 2]) if pub else (None, None)
        label = "Memory Mosaic" if name == "mosaic" else "Transformer"
        rows.append(f"| {label} ({r['config']['n_layer']} layers, {r['params']:,} params) | {r['steps']} | "
                    f"{_fmt(r['accuracy'])} | {_fmt(r['tvd'])} | {_fmt(pa)} | {_fmt(pt)} |")
    for name, m in (ngram or {}).items():
        rows.append(f"| in-context {name} (no training) | — | {_fmt(m['accuracy'])} | {_fmt(m['tvd'])} | "
                    f"{_fmt(NGRAM_ANCHORS[name][0])} | {_fmt(NGRAM_ANCHORS[name][1])} |")
    note = f"Paper: Memory Mosaics Fig. 9 at N = {n_train}, full protocol (800 steps at N = 100)." if pub else \
        f"No published number at N = {n_train}."
    return "\n".join(rows) + "\n\n" + note + " n-gram paper columns: the §1.8 anchors (official N = 2500 test split)."


def stream_table(results: dict) -> str:
    rows = ["| model | layers | params | steps | test accuracy (induction: acc_end) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['config']['n_layer']} | {r['params']:,} | {r['steps']} | {_fmt(r['accuracy'])} |")
    return "\n".join(rows)


def plot_run(result: dict, path: Path, title: str) -> None:
    """Training loss (and validation loss / test accuracy) against steps for one run."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    h = result["history"]
    ax.plot([e["step"] for e in h], [e["loss"] for e in h], label="train loss", lw=1)
    ev = result["evals"]
    if ev and "val_loss" in ev[0]:
        ax.plot([e["step"] for e in ev], [e["val_loss"] for e in ev], "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    if ev and "accuracy" in ev[0]:
        ax2 = ax.twinx()
        ax2.plot([e["step"] for e in ev], [e["accuracy"] for e in ev], "s-", color="C2", label="test accuracy")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_compare(results: dict, path: Path, title: str, n_train: int | None = None) -> None:
    """Left: training curves of each model. Right (RegBench): accuracy and TVD beside the paper's numbers."""
    plt = pyplot()

    regbench = n_train is not None
    fig, axes = plt.subplots(1, 2 if regbench else 1, figsize=(11 if regbench else 6, 4))
    ax = axes[0] if regbench else axes
    for i, (name, r) in enumerate(results.items()):
        ax.plot([e["step"] for e in r["history"]], [e["loss"] for e in r["history"]], lw=1, color=f"C{i}",
                label=f"{name} train")
        ev = r["evals"]
        key = "val_loss" if regbench else "accuracy"
        ax.plot([e["step"] for e in ev], [e[key] for e in ev], "o--", color=f"C{i}",
                label=f"{name} {'val loss' if regbench else 'test acc_end'}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy" + ("" if regbench else " / accuracy"))
    ax.legend(fontsize=8)
    ax.set_title(title)
    if regbench:
        ax = axes[1]
        names = list(results)
        pub = PUBLISHED_REGBENCH.get(n_train)
        labels, ours, paper = [], [], []
        for metric, off in (("accuracy", 0), ("tvd", 2)):
            for name in names:
                labels.append(f"{'MM' if name == 'mosaic' else 'GPT'}\n{metric}")
                ours.append(results[name][metric])
                paper.append(pub[off + (0 if name == "mosaic" else 1)] if pub else 0.0)
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], ours, width=0.4, label=f"ours ({results[names[0]]['steps']} steps)")
        if pub:
            ax.bar([x + 0.2 for x in xs], paper, width=0.4, label="paper (full budget)", alpha=0.6)
        ax.set_xticks(list(xs), labels)
        ax.set_ylim(0, 1)
        ax.set_title(f"RegBench, N = {n_train} training automata")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy_curves(results: dict, path: Path, title: str, ylabel: str = "test acc_end") -> None:
    """Test accuracy against steps for several streaming runs (label -> results.json dict)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in results.items():
        ax.plot([e["step"] for e in r["evals"]], [e["accuracy"] for e in r["evals"]], "o-", ms=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
