"""Self-contained HTML reports (figures embedded as base64 PNG, no network needed) for `mosaic inspect`."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jsonsafe import dumps
from ..plots import pyplot


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
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        pyplot().close(fig)
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


def constants_figure(rows: list[dict]):
    """Per-head time constants (1/b) and bandwidths β across layers."""
    fig, (a, b) = pyplot().subplots(1, 2, figsize=(11, 3.8))
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


def top_retrieved(weights: np.ndarray, labels: list[str], k: int = 3) -> list[dict]:
    """For each query t: the k past positions with the largest weight, summed over heads."""
    total = weights.sum(0)  # (T, T)
    rows = []
    for t in range(1, total.shape[0]):
        order = np.argsort(-total[t])[: min(k, t)]
        picks = ", ".join(f"{j}:{labels[j]!r}→{labels[j + 1]!r} ({total[t, j] / weights.shape[0]:.2f})" for j in order)
        rows.append({"t": t, "token": labels[t], "reads (pos:key→value, weight)": picks})
    return rows
