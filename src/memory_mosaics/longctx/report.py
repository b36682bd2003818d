"""Tables and the figure of the long-context benchmark (longctx.json -> table.md, longctx.png)."""

from __future__ import annotations

from pathlib import Path


def _lengths(summary: dict) -> list[str]:
    return [str(L) for L in summary["config"]["eval_lens"]]


def compact(summary: dict) -> str:
    """Models × evaluation length: exact-match accuracy (%) averaged over needle depths."""
    lens = _lengths(summary)
    rows = ["| model | params | steps | " + " | ".join(lens) + " |", "|---|---|---|" + "---|" * len(lens)]
    for name, r in summary["results"].items():
        train_len = summary["config"]["train_len"]
        cells = [f"{100 * r['mean_by_length'][L]:.1f}" + ("†" if r["cropped"] and int(L) > train_len else "")
                 for L in lens]
        rows.append(f"| {name} | {r['params']:,} | {r.get('steps_done', summary['config']['steps'])} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def by_depth(summary: dict, name: str) -> str:
    """One model: evaluation length × needle depth (accuracy %)."""
    r = summary["results"][name]
    depths = [str(d) for d in summary["config"]["depths"]]
    rows = ["| length \\ depth | " + " | ".join(depths) + " | mean |", "|---|" + "---|" * (len(depths) + 1)]
    for L in _lengths(summary):
        row = r["accuracy"][L]
        rows.append(f"| {L} | " + " | ".join(f"{100 * row[d]:.1f}" for d in depths) +
                    f" | {100 * r['mean_by_length'][L]:.1f} |")
    return "\n".join(rows)


def markdown(summary: dict) -> str:
    c = summary["config"]
    facts = f"{c['n_keys']} facts per {c['train_len']} tokens" if c.get("key_density") else f"{c['n_keys']} facts per context"
    tsteps = f" ({c['transformer_steps']} for the transformers)" if c.get("transformer_steps") else ""
    head = (f"Multi-key retrieval over TinyStories filler (bytes): {facts}, names {c.get('names', 'single')}"
            f"{' (far: a fixed phrase between name and code)' if c.get('far') else ''}, "
            f"{c.get('n_queries', 1)} question(s) per example (the last scored), "
            f"{c['n_eval']} test examples per (length, depth), greedy exact match of the 4-digit code. Trained at "
            f"{c['train_len']} for up to {c['steps']} steps{tsteps} of {c['batch_size']} (time limit "
            f"{c.get('time_limit') or 'none'} s per model), lr {c['lr']:g}; d={c['n_embd']}, "
            f"{c['n_layer']} layers, {c['n_head']} heads; v2: h={c['short_window']}, "
            f"m~U[{c['long_offset_min']},{c['long_offset_max']}] (m={c['long_offset_min']} at inference); "
            f"training loss on {'every token' if c.get('lm_loss') else 'the answer digits'}; "
            f"seed {c['seed']}. † = GPT-2 input cropped to its last {c['train_len']} tokens (position table).")
    dist = summary.get("needle_distance", {})
    if dist:
        head += "\n\nTokens between the asked fact and the answer (mean): " + ", ".join(
            f"{k} → {v:.0f}" for k, v in dist.items()) + "."
    parts = [head, "## Accuracy (%) by evaluation length, mean over depths", compact(summary)]
    for name in summary["results"]:
        parts += [f"### {name}: length × depth", by_depth(summary, name)]
    return "\n\n".join(parts) + "\n"


def plot(summary: dict, path: Path) -> None:
    from ..plots import pyplot

    plt = pyplot()
    lens = _lengths(summary)
    longest = lens[-1]
    depths = [str(d) for d in summary["config"]["depths"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    # Distinct markers and dashes: equal scores (0 or 100) would otherwise hide each other.
    for i, (name, r) in enumerate(summary["results"].items()):
        style = dict(marker="osD^vx"[i % 6], ls=("-", "--", "-.", ":")[i % 4], ms=9 - i, label=name)
        a.plot([int(L) for L in lens], [100 * r["mean_by_length"][L] for L in lens], **style)
        b.plot([float(d) for d in depths], [100 * r["accuracy"][longest][d] for d in depths], **style)
    a.set_xscale("log", base=2)
    a.axvline(summary["config"]["train_len"], color="grey", ls=":", lw=1)
    a.set(xlabel="evaluation length (tokens)", ylabel="exact match (%)", title="mean over needle depths",
          ylim=(-2, 102))
    b.set(xlabel="needle depth (0 = start)", ylabel="exact match (%)", title=f"at length {longest}", ylim=(-2, 102))
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
