"""Side-by-side language-modelling comparison: Memory Mosaic vs transformer on the same tokens, schedule and budget.

    from memory_mosaics.training import TrainConfig
    from memory_mosaics.training.compare import CompareConfig, compare
    res = compare(CompareConfig(TrainConfig(data="stories.txt", tokenizer="bpe", max_steps=150),
                                out="runs/cmp", seeds=(1, 2, 3), inits=("gpt2", "library"), ood_data="shakespeare"))

Every run is an ordinary `train()` run (training/trainer.py) in OUT/runs/<name>/, one per model × init × lr × seed,
all with the same TrainConfig apart from those four. They run in parallel worker processes (`jobs`). After
training, each run is scored with evaluation.per_position_loss on the same fixed windows: the validation split at
1×, 2× and 4× the training context (n/a where the model cannot read past it, `model.max_context`: a
learned-position transformer; rotary / none positions and the Memory Mosaic are scored), and an
out-of-distribution text encoded with the run's own tokenizer. Writes OUT/compare.json, OUT/table.md and
OUT/compare.png (validation loss against step and wall-clock, per-position loss).
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import CONFIGS, MOSAIC_INITS, ConfigError, at_least, check_choices
from .config import TrainConfig

MODELS = ("mosaic", "transformer")


def check_either_model_args(model_args: dict) -> None:
    """Compare's model_args may name fields of either model (each run takes those its model has)."""
    known = set(CONFIGS["mosaic"].field_names()) | set(CONFIGS["transformer"].field_names())
    unknown = sorted(set(model_args) - known)
    if unknown:
        raise ConfigError(f"unknown model_args {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")


@dataclass
class CompareConfig:
    base: TrainConfig  # everything shared by the runs; its model, seed, lr and out are set per run
    out: str = ""
    models: tuple = field(default=MODELS, metadata={"choices": MODELS})
    # preset: each preset's own; "v2" is the Memory Mosaic's only (models=("mosaic",))
    inits: tuple = field(default=("preset",), metadata={"choices": ("preset", *MOSAIC_INITS)})
    seeds: tuple = (1337,)
    lrs: tuple = ()  # empty: (base.lr,). Each run's min_lr is lr × base.min_lr / base.lr (the same decay ratio)
    ood_data: str = ""  # an out-of-distribution text scored after training ("" = none)
    contexts: tuple = (1, 2, 4)  # per-position loss at these multiples of the training context
    jobs: Optional[int] = None  # worker processes (default: as many as runs, at most the CPU count)
    tf32: bool = False  # CUDA float32 matmuls in TF32 (off: exact float32)
    # Model config overrides for the runs, fields of either model (None: base.model_args). A field only one model
    # has (pmem_size, positions, ...) goes to that model's runs only: base (a TrainConfig for one model) could not
    # hold e.g. positions=rotary next to its default model "mosaic".
    model_args: Optional[dict] = None

    def __post_init__(self) -> None:
        if self.model_args is None:
            self.model_args = dict(self.base.model_args)
        if not self.out:
            raise ConfigError("no output directory given", key="out")
        check_choices(self)
        if not self.lrs:
            self.lrs = (self.base.lr,)
        for lr in self.lrs:
            if not (math.isfinite(lr) and lr > 0):
                raise ConfigError(f"lrs (learning rates) must be finite and > 0, got {lr}", key="lrs")
        for name in ("models", "inits", "seeds", "contexts"):
            if not getattr(self, name):
                raise ConfigError(f"{name} must name at least one", key=name)
        if any(c < 1 for c in self.contexts):
            raise ConfigError(f"contexts are multiples of the training context (≥ 1), got {self.contexts}",
                              key="contexts")
        at_least(self, 1, "jobs")
        check_either_model_args(self.model_args)
        if self.base.resume:
            raise ConfigError("compare always starts new runs (no --resume)")
        for model in self.models:  # every run's model config now: a bad one would fail after the others trained
            for init in self.inits:
                try:
                    CONFIGS[model].preset(self.base.preset, **self._model_args(model, init))
                except ConfigError as err:
                    hint = " (v2 is the Memory Mosaic's init: compare it alone, --models mosaic)" if (
                        model == "transformer" and "'v2'" in str(err)) else ""
                    # Keyed as the model config's check, so the CLI names --model-args FIELD; init is not: it may
                    # come from --inits or from --model-args.
                    if err.key in (None, "init"):
                        raise ConfigError(f"the {model} runs: {err}{hint}") from None
                    raise ConfigError(f"{err} (the {model} runs)", key=err.key, others=err.others) from None

    def _model_args(self, model: str, init: str) -> dict:
        """The model config overrides of a run: model_args a model's config lacks (pmem_size, ablation switches)
        apply to the other only; an init other than "preset" replaces model_args' init."""
        names = CONFIGS[model].field_names()
        args = {k: v for k, v in self.model_args.items() if k in names}
        return args if init == "preset" else {**args, "init": init}

    def runs(self) -> list[dict]:
        """One spec per run: name and the TrainConfig it trains with."""
        specs = []
        for lr in self.lrs:
            for init in self.inits:
                for seed in self.seeds:
                    for model in self.models:
                        args = self._model_args(model, init)
                        name = f"{model}-{init}-lr{lr:g}-s{seed}"
                        min_lr = self.base.min_lr if lr == self.base.lr else lr * self.base.min_lr / self.base.lr
                        cfg = dataclasses.replace(
                            self.base, model=model, seed=seed, lr=lr, min_lr=min_lr,
                            model_args=args, out=str(Path(self.out) / "runs" / name))
                        specs.append(dict(name=name, model=model, init=init, lr=lr, seed=seed, train=cfg.to_dict()))
        return specs


def _score(run_dir: Path, spec: dict, contexts, ood_data: str, device: str) -> dict:
    """Per-position validation loss at each context multiple and the out-of-distribution loss of a finished run."""
    import torch

    from ..data import encode_documents, load_documents
    from ..evaluation import per_position_loss
    from .checkpoint import load_model
    from .loop import autocast_dtype
    from .trainer import prepare_data

    cfg = TrainConfig(**spec["train"])
    model, tokenizer, _, _ = load_model(run_dir, device=device)
    _, _, val_tok, data_key = prepare_data(cfg, tokenizer)
    block = model.config.block_size
    bs = cfg.eval_batch_size or cfg.batch_size // cfg.grad_accum
    amp = autocast_dtype(cfg.dtype, torch.device(device))  # score in the precision the run trained in
    out = {"data_key": data_key, "positions": {}}
    for k in contexts:
        if model.max_context is not None and k * block > model.max_context:
            out["positions"][str(k)] = None  # a learned position table ends at block_size: nothing to score
            continue
        res = per_position_loss(model, val_tok, k * block, cfg.eval_batches, bs, seed=cfg.seed + 1, device=device,
                                autocast_dtype=amp)
        # within / beyond: the same windows' loss at positions < block and ≥ block (the fair test of longer contexts:
        # windows of different lengths cover different text, so their overall means differ by sampling alone)
        out["positions"][str(k)] = {"loss": res.loss, "within": float(res.per_position[:block].mean()),
                                    "beyond": float(res.per_position[block:].mean()) if k > 1 else None,
                                    "per_position": res.per_position.round(5).tolist()}
    if ood_data:
        docs = load_documents(ood_data)
        dropped = 0
        if tokenizer.kind == "char":  # a character vocabulary has no entry for unseen characters: drop them
            known = set(tokenizer.chars)
            kept = ["".join(c for c in d if c in known) for d in docs]
            dropped = sum(map(len, docs)) - sum(map(len, kept))
            docs = [d for d in kept if d]
        ids = encode_documents(tokenizer, docs)
        res = per_position_loss(model, ids, block, cfg.eval_batches, bs, seed=cfg.seed + 2, device=device,
                                autocast_dtype=amp)
        out["ood"] = {"data": ood_data, "loss": res.loss, "tokens": int(len(ids)), "chars_dropped": dropped,
                      "per_position": res.per_position.round(5).tolist()}
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def _run(spec: dict, tokenizer: dict, contexts, ood_data: str, threads: Optional[int], tf32: bool) -> dict:
    """Worker: train one run with the shared tokenizer, then score it. Returns its summary, metrics and scores."""
    import torch

    from ..data import tokenizer_from_dict
    from .metrics import read_metrics
    from .trainer import train

    if threads:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    cfg = TrainConfig(**spec["train"])
    summary = train(cfg, tokenizer_from_dict(tokenizer))  # the same tokens for every run
    run_dir = Path(cfg.out)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    scores = _score(run_dir, spec, contexts, ood_data, device)
    metrics = read_metrics(run_dir / "metrics.csv")
    curve = [dict(step=int(r["step"]), val_loss=r["val_loss"], elapsed_s=r["elapsed_s"]) for r in metrics
             if r["val_loss"] is not None]
    return {**spec, "summary": summary, "curve": curve, **scores}


def compare(cc: CompareConfig) -> dict:
    """Train and score every run; write compare.json, table.md and compare.png under cc.out. Returns the JSON."""
    from .trainer import prepare_data

    out = Path(cc.out)
    if (out / "runs").exists() and any((out / "runs").iterdir()):
        raise ConfigError(f"{out} already holds a comparison; choose another --out")
    specs = cc.runs()
    # Train the tokenizer and tokenise once, here: every worker gets this tokenizer and finds the token cache warm.
    tokenizer, train_tok, val_tok, data_key = prepare_data(cc.base)
    tok_dict = tokenizer.to_dict()
    jobs = cc.jobs or max(1, min(len(specs), os.cpu_count() or 1))
    threads = cc.base.threads or (1 if jobs > 1 else None)
    print(f"compare: {len(specs)} runs ({', '.join(cc.models)} × init {', '.join(cc.inits)} × lr "
          f"{', '.join(f'{x:g}' for x in cc.lrs)} × seeds {', '.join(map(str, cc.seeds))}), {jobs} at a time; "
          f"{len(train_tok):,} train / {len(val_tok):,} val tokens", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results = []
    for spec in specs:
        spec["train"]["progress"] = cc.base.progress and jobs == 1
        # --verify-cache hashed the token cache once, above: the workers find it as verified (a size / mtime check)
        spec["train"]["verify_cache"] = False
    if jobs == 1:
        for spec in specs:
            results.append(_run(spec, tok_dict, cc.contexts, cc.ood_data, threads, cc.tf32))
            _announce(results[-1], t0)
    else:
        env_threads = str(threads or 1)
        os.environ.setdefault("OMP_NUM_THREADS", env_threads)  # read by the spawned workers at import
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run, spec, tok_dict, cc.contexts, cc.ood_data, threads, cc.tf32) for spec in specs]
            try:
                for fut in futures:
                    results.append(fut.result())
                    _announce(results[-1], t0)
            except BaseException:  # one run failed (or Ctrl-C): start no more, report that one
                pool.shutdown(cancel_futures=True)
                raise
    _check_same_tokens(results, data_key)
    report = dict(data=cc.base.data, tokenizer=cc.base.tokenizer, data_key=data_key, preset=cc.base.preset,
                  steps=cc.base.max_steps, batch_size=cc.base.batch_size, train_tokens=int(len(train_tok)),
                  val_tokens=int(len(val_tok)), ood_data=cc.ood_data, contexts=list(cc.contexts),
                  train_config={k: v for k, v in cc.base.to_dict().items() if k not in ("out", "model", "seed")},
                  wall_s=round(time.time() - t0, 1), runs=results)
    report["table"] = table(report)
    (out / "compare.json").write_text(json.dumps(report, indent=1))
    (out / "table.md").write_text(report["table"] + "\n")
    figure = plot(report, out / "compare.png")
    print("\n" + report["table"], flush=True)
    print(f"\nwrote {out / 'compare.json'}, {out / 'table.md'}" + (f", {figure}" if figure else ""), flush=True)
    return report


def _announce(r: dict, t0: float) -> None:
    s = r["summary"]
    print(f"[{r['name']}] val {s['val_loss']:.4f} after {s['step']} steps, {s['train_tok_per_s']:,.0f} tok/s "
          f"({time.time() - t0:.0f}s since start)", flush=True)


def _check_same_tokens(results: list[dict], data_key: str) -> None:
    """Each worker reports the content key of the tokens it trained and scored on: all must be the parent's."""
    for r in results:
        if r["data_key"] != data_key:
            raise RuntimeError(f"run {r['name']} saw different tokens (key {r['data_key']}, expected {data_key})")


# --- report ---

def _group(report: dict) -> dict:
    """(model, init, lr) -> its runs (one per seed)."""
    groups: dict = {}
    for r in report["runs"]:
        groups.setdefault((r["model"], r["init"], r["lr"]), []).append(r)
    return groups


def _stat(values) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}"


def _val_at(run: dict, step: int):
    return next((c["val_loss"] for c in run["curve"] if c["step"] == step), None)


def table(report: dict) -> str:
    """Markdown: one row per model × init × lr, mean ± sample std over seeds."""
    groups = _group(report)
    steps = sorted({c["step"] for r in report["runs"] for c in r["curve"]})
    first = steps[0] if steps else None
    block = None
    head = [f"val @{first}", f"val @{steps[-1]}"] if len(steps) > 1 else [f"val @{steps[-1]}"]
    ctx = [f"{k}× ctx: all / pos <T / ≥T" for k in report["contexts"] if k != 1]
    cols = ["model", "init", "lr", "seeds", "params", *head, "pos 0", "pos ½T..T", *ctx]
    if report["ood_data"]:
        cols.append("OOD")
    cols.append("tok/s")
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for (model, init, lr), runs in groups.items():
        r0 = runs[0]
        one = [r["positions"]["1"] for r in runs]
        block = len(one[0]["per_position"])
        cells = [model, init if init != "preset" else f"preset ({_init_of(r0)})", f"{lr:g}", str(len(runs)),
                 f"{r0['summary']['params']:,}"]
        if len(steps) > 1:
            cells.append(_stat(_val_at(r, first) for r in runs))
        cells.append(_stat(r["summary"]["val_loss"] for r in runs))
        cells.append(_stat(p["per_position"][0] for p in one))
        cells.append(_stat(float(np.mean(p["per_position"][block // 2:])) for p in one))
        for k in report["contexts"]:
            if k != 1:
                ps = [r["positions"][str(k)] for r in runs if r["positions"][str(k)]]
                cells.append(" / ".join(f"{np.mean([p[f]for p in ps]):.3f}" for f in ("loss", "within", "beyond"))
                             if ps else "n/a")
        if report["ood_data"]:
            cells.append(_stat(r["ood"]["loss"] for r in runs))
        cells.append(f"{np.mean([r['summary']['train_tok_per_s'] or 0 for r in runs]):,.0f}")
        rows.append("| " + " | ".join(cells) + " |")
    notes = (f"\n\nValidation loss (nats/token) on the fixed validation windows of {report['data']} "
             f"({report['tokenizer']} tokens), mean ± sample std over seeds. pos 0 / pos ½T..T: per-position loss "
             f"at position 0 and averaged over the second half of the training context T = {block}. k× ctx: mean "
             f"loss over windows of k·T tokens, then over their positions < T and ≥ T (the same windows: the fair "
             f"test of a longer context; n/a: a model that cannot read past T, the learned-position transformer; means over "
             f"seeds).")
    if report["ood_data"]:
        notes += f" OOD: loss on {report['ood_data']} (not trained on), windows of T tokens."
    return "\n".join(rows) + notes


def _init_of(run: dict) -> str:
    from ..config import CONFIGS

    cfg, cls = run["train"], CONFIGS[run["model"]]
    return cls.preset(cfg["preset"], **cls.upgrade_overrides(cfg["preset"], cfg["model_args"])).init


def _log_bins(per_position: np.ndarray) -> tuple[list, list]:
    """Mean loss over positions 0, 1, 2-3, 4-7, ... (plotted at each bin's first position + 1, log axis)."""
    xs, ys, lo = [], [], 0
    while lo < len(per_position):
        hi = max(1, 2 * lo)
        xs.append(lo + 1)
        ys.append(float(per_position[lo:hi].mean()))
        lo = hi
    return xs, ys


def plot(report: dict, path: Path) -> Optional[Path]:
    """Three panels: validation loss vs step, vs wall-clock seconds, and per-position loss (1×, and k× dashed)."""
    try:
        from ..plots import pyplot

        plt = pyplot()
    except ImportError:
        print("compare: matplotlib is not installed; figures skipped (compare.json has every curve)", flush=True)
        return None

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((model, init, lr), runs) in enumerate(_group(report).items()):
        label = f"{model} {init if init != 'preset' else _init_of(runs[0])} lr {lr:g}"
        c = colors[i % len(colors)]
        for j, r in enumerate(runs):
            kw = dict(color=c, lw=1, alpha=0.8, label=label if j == 0 else None)
            axes[0].plot([p["step"] for p in r["curve"]], [p["val_loss"] for p in r["curve"]], **kw)
            axes[1].plot([p["elapsed_s"] for p in r["curve"]], [p["val_loss"] for p in r["curve"]], **kw)
        for k in report["contexts"]:
            curves = [r["positions"][str(k)]["per_position"] for r in runs if r["positions"][str(k)]]
            if not curves:
                continue
            x, y = _log_bins(np.mean(curves, axis=0))
            axes[2].plot(x, y, color=c, lw=1.2, marker=".", ls="-" if k == 1 else (0, (k, 2)),
                         label=f"{label} ({k}× ctx)")
    for ax, xl in zip(axes, ("step", "wall-clock seconds (training + evaluation)", "position in window + 1")):
        ax.set_xlabel(xl)
        ax.set_ylabel("validation loss (nats/token)")
        ax.grid(alpha=0.3)
    axes[2].set_xscale("log")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=6)
    axes[0].set_title("validation loss vs step")
    axes[1].set_title("validation loss vs wall-clock")
    axes[2].set_title("per-position loss (mean over positions [2^i, 2^(i+1)))")
    fig.suptitle(f"{report['data']} ({report['tokenizer']}), preset {report['preset']}, {report['steps']} steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["CompareConfig", "compare", "table", "plot"]
