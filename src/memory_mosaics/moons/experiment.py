"""One moons run (train, evaluate, plot, summary.json) and the 1-head vs 3-head comparison over seeds.

Under torchrun one model trains with DDP (the global --batch split between the processes); process 0 evaluates
and writes the figures, summary.json and checkpoints. The comparison runs in one process only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..config import ConfigError
from ..jsonsafe import dumps
from ..training import checkpoint as ckpt_io
from ..training import distributed as D
from ..training.loop import autocast_dtype, check_out, resume_run
from .config import MoonsConfig
from .data import BLOCK, TRAIN_PANEL_TRIPLE, VAL_TRIPLE, joint_period, to_steps
from .evaluate import THRESHOLD, evaluate_triple
from .model import MoonsMemory
from .train import train


def triple_info(triple) -> dict:
    return {"triple": list(triple), "periods_steps": [round(to_steps(p), 2) for p in triple],
            "longest_period_steps": round(to_steps(max(triple)), 2),
            "joint_period_steps": round(to_steps(joint_period(triple)), 2)}


def mid_context_error(run: dict, split: str = "val", n: int = 25) -> float:
    """Mean n-step error over contexts between the longest single period and the joint period: where 3 heads
    should already predict and 1 head cannot yet."""
    info = run["periods"][split]
    ev = run[split]
    errs = [e for c, e in zip(ev["contexts"], ev[f"error_{n}"])
            if info["longest_period_steps"] < c < info["joint_period_steps"]]
    return sum(errs) / len(errs) if errs else float("nan")


def run_config(heads, seed, iters, batch, block, windows, stride) -> dict:
    return {"heads": heads, "seed": seed, "iters": iters, "batch": batch, "block": block,
            "eval_windows": windows, "context_stride": stride}


def run_moons(cfg: MoonsConfig, log=print) -> dict:
    """One model (cfg.heads) or, with cfg.compare, 1 head and 3 heads for each of cfg.seeds; returns the summary
    also written to cfg.out/summary.json ({} on torchrun processes other than 0)."""
    if not cfg.out:
        raise ConfigError("no output directory given", key="out")
    if cfg.heads is None and not cfg.compare:
        raise ConfigError("give heads (1 or 3) or compare=True", key="heads")
    torch.set_num_threads(cfg.threads)
    common = dict(iters=cfg.iters, batch=cfg.batch, block=cfg.block, windows=cfg.eval_windows,
                  stride=cfg.context_stride, log=log, progress=cfg.progress,
                  dtype=cfg.dtype, checkpoint_every=cfg.checkpoint_every)
    if cfg.compare:
        D.refuse_torchrun("mosaic moons --compare", "trains its models one after the other in one process "
                                                    "(torchrun trains one: --heads)")
        return run_compare(cfg.out, seeds=cfg.seeds, device=D.parse_device(cfg.device), **common)
    D.check_divisible(cfg.batch, "--batch")  # before any process waits for the others
    check_out(cfg.out, cfg.resume)  # on every process before the process group forms: before any write
    info, device = D.setup(cfg.device)
    try:
        return run_single(cfg.out, cfg.heads, cfg.seed, resume=cfg.resume, device=device, info=info, **common)
    finally:
        D.teardown()


def run_single(out, heads: int, seed: int = 100, iters: int = 500, batch: int = 64, block: int = BLOCK,
               windows: int = 512, stride: int = 5, reuse: bool = False, log=print, device="cpu",
               progress: bool = False, resume: bool = False, dtype: str = "float32",
               checkpoint_every: int | None = 50, info: D.DistInfo | None = None) -> dict:
    """Train + evaluate one model into `out` (checkpoints there: ckpt-<iter>/, the model of the last one is the
    trained model). reuse=True returns an existing summary.json of the same config; resume=True continues the
    training from the newest checkpoint. info: this process under torchrun (only process 0 evaluates and writes;
    the others return {})."""
    info = info or D.DistInfo()
    if not info.main:
        log = _quiet
    out = Path(out)
    cfg = run_config(heads, seed, iters, batch, block, windows, stride)
    prev = out / "summary.json"
    if reuse and prev.is_file():
        s = json.loads(prev.read_text())
        if all(s.get(k) == v for k, v in cfg.items()):
            log(f"reusing {prev}")
            return s
    train_config = {**cfg, "dtype": dtype}
    run = resume_run(out, train_config, log=log) if resume else None
    if run is not None:
        log(f"resuming {out} at iteration {run[1]['step']}")
    out.mkdir(parents=True, exist_ok=True)
    files = {"model_config.json": {"model_type": "moons", "n_head": heads}, "train_config.json": train_config}
    model, losses, train_s = train(heads, seed, iters, batch, block, log=log, device=device, progress=progress,
                                   out=out, resume=run, amp=autocast_dtype(dtype, torch.device(device)), files=files,
                                   checkpoint_every=checkpoint_every, info=info)
    if not info.main:
        return {}
    t0 = time.perf_counter()
    ev = {name: evaluate_triple(model, triple, seed, windows, block, stride)
          for name, triple in (("train", TRAIN_PANEL_TRIPLE), ("val", VAL_TRIPLE))}
    summary = {
        **cfg, "params": model.num_params(), "threshold": THRESHOLD,
        "train_seconds": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t0, 1),
        "final_loss": losses[-1],
        "periods": {"train": triple_info(TRAIN_PANEL_TRIPLE), "val": triple_info(VAL_TRIPLE)},
        "val_context_threshold": ev["val"]["context_threshold"],
        "train_context_threshold": ev["train"]["context_threshold"],
        **ev,
    }
    from . import plots  # matplotlib only when needed

    tag = f"{heads}head{'s' if heads > 1 else ''}"
    plots.plot_errors([summary], out / f"moons_error_{tag}.png")
    plots.plot_attention(model, out / f"moons_attention_{tag}.png", seed)
    plots.plot_weights(model, out / f"moons_weights_{tag}.png")
    prev.write_text(dumps(summary, indent=1))
    log(f"heads {heads} seed {seed}: val threshold {summary['val_context_threshold']}, "
        f"train threshold {summary['train_context_threshold']} -> {out}")
    return summary


def _quiet(msg: str) -> None:
    """The log of torchrun processes other than 0."""


def run_compare(out, seeds=(100, 101, 102), iters: int = 500, batch: int = 64, block: int = BLOCK,
                windows: int = 512, stride: int = 5, log=print, device="cpu", progress: bool = False,
                dtype: str = "float32", checkpoint_every: int | None = 50) -> dict:
    """1 head and 3 heads for each seed (one at a time) into out/heads{H}_seed{S}/, then one comparison.
    Finished runs of the same config are reused and interrupted ones continue from their checkpoint, so an
    interrupted comparison resumes (a run folder of a different config is refused)."""
    out = Path(out)
    runs = [run_single(out / f"heads{h}_seed{s}", h, s, iters, batch, block, windows, stride, reuse=True, log=log,
                       device=device, progress=progress, dtype=dtype, checkpoint_every=checkpoint_every,
                       resume=ckpt_io.has_checkpoint(out / f"heads{h}_seed{s}"))
            for s in seeds for h in (1, 3)]
    table = {f"{h}": {str(r["seed"]): {"val": r["val_context_threshold"], "train": r["train_context_threshold"]}
                      for r in runs if r["heads"] == h} for h in (1, 3)}
    summary = {
        "seeds": list(seeds), "iters": iters, "threshold": THRESHOLD,
        "periods": runs[0]["periods"],
        "context_thresholds": table,  # heads -> seed -> {val, train}
        "val_context_threshold": {h: [v["val"] for v in t.values()] for h, t in table.items()},
        "val_mid_context_error": {  # heads -> seed -> mean error, contexts in (longest period, joint period)
            f"{h}": {str(r["seed"]): {"error_5": mid_context_error(r, "val", 5), "error_25": mid_context_error(r)}
                     for r in runs if r["heads"] == h} for h in (1, 3)},
        "runs": {f"heads{r['heads']}_seed{r['seed']}": r for r in runs},
    }
    from . import plots

    plots.plot_errors(runs, out / "moons_compare.png")
    (out / "summary.json").write_text(dumps(summary, indent=1))
    log(f"val context thresholds (5-step error < {THRESHOLD}): {summary['val_context_threshold']}")
    return summary


def load_model(run_dir) -> MoonsMemory:
    """The trained model that `run_single` saved in run_dir (a run folder or its ckpt-<iters> folder)."""
    ckpt = ckpt_io.resolve(run_dir)
    ckpt_io.verify(ckpt, need=("model.safetensors", "model_config.json"))
    config = ckpt_io.read_json(ckpt, "model_config.json")
    if config.get("model_type") != "moons" or config.get("n_head") not in (1, 3):
        raise ckpt_io.CheckpointError(f"{ckpt} does not hold a three-moons model (model_config.json: "
                                      f"model_type {config.get('model_type')!r})")
    model = MoonsMemory(config["n_head"])
    ckpt_io.load_weights(model, ckpt / "model.safetensors")
    return model.eval()


def is_moons_run(path) -> bool:
    """Whether `path` is a `mosaic moons` run (or checkpoint) folder, judged by its JSON alone."""
    try:
        return ckpt_io.read_json(ckpt_io.resolve(path), "model_config.json").get("model_type") == "moons"
    except ckpt_io.CheckpointError:
        return False
