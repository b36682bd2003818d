"""The one plotting module: the figures more than one part of the library draws (per-position loss curves,
retrieval maps) and the one place matplotlib is set up (the Agg backend: files only, no display needed).
Experiment-specific figures live beside their experiment (icl/report.py, moons/plots.py) and use `pyplot()`."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: plotting is never needed to train)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, dpi: int = 100) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def loss_curves(curves: dict[str, np.ndarray], *, block_size: int | None = None, title: str = "per-position loss",
                binned: bool = False):
    """Next-token loss against position in the context (log x), one line per curve; a dashed line at the
    training context. binned=True: faint raw curves under their means over log-spaced bins (single positions
    are noisy; bin means show the trend)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        curve = np.asarray(curve)
        n = len(curve)
        if not binned:
            ax.plot(np.arange(1, n + 1), curve, label=name, lw=1)
            continue
        line, = ax.plot(np.arange(1, n + 1), curve, lw=0.5, alpha=0.3)
        edges = np.unique(np.round(np.logspace(0, np.log10(n), 40)).astype(int))
        edges = np.concatenate([[0], edges[edges < n], [n]])
        centres = [(a + b + 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
        means = [curve[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(centres, means, color=line.get_color(), lw=1.8, label=name)
    if block_size:
        ax.axvline(block_size, color="gray", ls="--", lw=0.8, label="training context")
    ax.set(xlabel="position in context", ylabel="next-token loss (nats)", xscale="log", title=title)
    ax.legend(fontsize=8)
    return fig


def retrieval_maps(weights: np.ndarray, title: str, *, labels: list[str] | None = None, stripes=(), rows=(),
                   red_row: float | None = None, sqrt: bool = False):
    """Heat maps of (H, T, T) retrieval weights, one panel per head; query t on the y axis, stored pair j on x.
    stripes: dotted diagonals at these lags (pairs one period back); rows: grey lines at these query steps,
    red_row a red one; sqrt=True shows √weights (weak stripes become visible)."""
    plt = pyplot()
    H, T, _ = weights.shape
    cols = min(H, 4)
    nrows = -(-H // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 4.6 * nrows), squeeze=False)
    for ax in axes.flat[H:]:
        ax.axis("off")
    for h, ax in enumerate(axes.flat[:H]):
        ax.imshow(weights[h] ** 0.5 if sqrt else weights[h], cmap="viridis", aspect="auto", interpolation="nearest",
                  vmin=0.0)
        ax.set_title(f"head {h}")
        if h // cols == nrows - 1:
            ax.set_xlabel("stored pair j (value peeks at j+1)")
        if h % cols == 0:
            ax.set_ylabel("query position t")
        for p in stripes:
            ax.plot([0, T - p], [p, T], color="white", lw=0.6, ls=":")
        for r in rows:
            ax.axhline(r, color="grey", lw=0.7)
        if red_row is not None:
            ax.axhline(red_row, color="red", lw=0.8)
        if labels is not None and T <= 48:
            ax.set_xticks(range(T), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
    fig.suptitle(title)
    return fig
