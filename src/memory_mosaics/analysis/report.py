"""Self-contained HTML reports (figures embedded as base64 PNG, no network needed) for `mosaic inspect`."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jsonsafe import dumps


@dataclass
class Report:
    title: str
    out: Path
    sections: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # PNG file names written beside the HTML

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)

    def heading(self, text: str) -> None:
        self.sections.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.sections.append(f"<p>{html.escape(text)}</p>")

    def figure(self, fig, name: str, caption: str) -> None:
        """Save `fig` as out/name.png and embed the same PNG in the HTML."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        png = buf.getvalue()
        (self.out / f"{name}.png").write_bytes(png)
        self.figures.append(f"{name}.png")
        data = base64.b64encode(png).decode("ascii")
        self.sections.append(
            f'<figure id="{html.escape(name)}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def table(self, rows: list[dict], caption: str, floatfmt: str = "{:.3g}") -> None:
        if not rows:
            return
        cols = list(rows[0])
        cell = lambda v: floatfmt.format(v) if isinstance(v, float) else html.escape(str(v))  # noqa: E731
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
        self.sections.append(f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>")

    def write(self, data: dict | None = None) -> Path:
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "img{max-width:100%}table{border-collapse:collapse;margin:1em 0;font-size:90%}"
                 "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}caption{font-weight:bold;text-align:left}")
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(self.sections)}</body></html>")
        path = self.out / "report.html"
        path.write_text(page, encoding="utf-8")
        if data is not None:
            (self.out / "report.json").write_text(dumps(data, indent=1))
        return path


def retrieval_figure(weights: np.ndarray, labels: list[str] | None, title: str, stripes: list[float] = ()):
    """Heat maps of (H, T, T) retrieval weights, one panel per head; query on the y axis, stored pair on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H, T, _ = weights.shape
    cols = min(H, 4)
    rows = -(-H // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.6 * rows), squeeze=False)
    for ax in axes.flat[H:]:
        ax.axis("off")
    for h, ax in enumerate(axes.flat[:H]):
        ax.imshow(weights[h], cmap="viridis", aspect="auto", interpolation="nearest", vmin=0.0)
        ax.set_title(f"head {h}")
        if h // cols == rows - 1:
            ax.set_xlabel("stored pair j (value peeks at j+1)")
        if h % cols == 0:
            ax.set_ylabel("query position t")
        for p in stripes:  # lines at lag p: pairs one period back
            ax.plot([0, T - p], [p, T], color="white", lw=0.6, ls=":")
        if labels is not None and T <= 48:
            ax.set_xticks(range(T), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
    fig.suptitle(title)
    return fig


def constants_figure(rows: list[dict]):
    """Per-head time constants (1/b) and bandwidths β across layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    layers = sorted({r["layer"] for r in rows})
    for layer in layers:
        rs = [r for r in rows if r["layer"] == layer]
        heads = [r["head"] for r in rs]
        a.plot(heads, [r["cmem_time_constant"] for r in rs], "o-", label=f"layer {layer}")
        b.plot(heads, [r["cmem_bandwidth"] for r in rs], "o-", label=f"layer {layer}")
    a.set(xlabel="head", ylabel="1/b (tokens)", title="context-memory key time constant", yscale="log")
    b.set(xlabel="head", ylabel="β = s²", title="context-memory bandwidth (inverse)", yscale="log")
    a.legend(fontsize=8)
    return fig


def loss_figure(curves: dict[str, np.ndarray], block_size: int | None = None):
    """Per-position loss curves (loss against position in the context)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name, lw=1)
    if block_size:
        ax.axvline(block_size, color="gray", ls="--", lw=0.8, label="training context")
    ax.set(xlabel="position in context", ylabel="next-token loss (nats)", xscale="log", title="per-position loss")
    ax.legend(fontsize=8)
    return fig


def top_retrieved(weights: np.ndarray, labels: list[str], k: int = 3) -> list[dict]:
    """For each query t: the k past positions with the largest weight, summed over heads."""
    total = weights.sum(0)  # (T, T)
    rows = []
    for t in range(1, total.shape[0]):
        order = np.argsort(-total[t])[: min(k, t)]
        picks = ", ".join(f"{j}:{labels[j]!r}→{labels[j + 1]!r} ({total[t, j] / weights.shape[0]:.2f})" for j in order)
        rows.append({"t": t, "token": labels[t], "reads (pos:key→value, weight)": picks})
    return rows
