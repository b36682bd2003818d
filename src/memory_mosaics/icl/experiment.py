"""One ICL run (task × model) -> results.json + plot, and the side-by-side comparison behind `mosaic icl`.

    run_icl(IclConfig(task="regbench", model="mosaic", out="runs/rb-mm"))       # one model
    run_icl(IclConfig(task="regbench", compare=True, out="runs/rb"))           # both, one after the other

(`mosaic icl --compare` runs the same configs in parallel processes, then calls `summarize_compare`.)
Under torchrun one model trains with DDP over the processes (the global batch split between them); process 0
writes the results, the log and the checkpoints. A comparison is refused there (it launches its own processes)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from ..jsonsafe import dumps
from ..training import checkpoint as ckpt_io
from ..training import distributed as D
from ..training.loop import autocast_dtype, check_out, resume_run
from . import report
from .config import RESUME_MUTABLE, IclConfig
from .models import build_icl_model
from .train import BATCH_SIZE, Budget, regbench_budget, train_regbench, train_stream

STREAM_BUDGETS = {"demo": dict(steps=300, eval_every=50), "full": dict(steps=3000, eval_every=250)}


def stream_budget(name: str, steps=None, lr=None) -> Budget:
    if name not in STREAM_BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose demo or full")
    b = Budget(name, lr=1e-3, warmup=0, val_subset=0, dropout=False, **STREAM_BUDGETS[name])
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        b.steps, b.eval_every = steps, min(b.eval_every, max(1, steps // 6))
    if lr is not None:
        if not 0 < lr < float("inf"):  # also refuses nan
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        b.lr = lr
    b.warmup = max(1, round(0.1 * b.steps))
    return b


def _regbench(cfg: IclConfig, device, log, run: dict):
    from .regbench import generate

    budget = regbench_budget(cfg.budget, cfg.envs, cfg.steps, cfg.lr, None if cfg.dropout is None
                             else cfg.dropout == "on")
    t = time.time()
    data = generate(seed=cfg.data_seed, n_train=cfg.envs, n_test=cfg.n_test)
    log(f"RegBench: {len(data.train)} train / {len(data.test)} test / {len(data.val)} val automata "
        f"(data seed {cfg.data_seed}, generated in {time.time() - t:.1f}s)")
    torch.manual_seed(cfg.seed)  # the initialisation
    model = build_icl_model(cfg.model, n_layer=cfg.layers or 2, dropout=budget.dropout).to(device)
    clip = 1.0 if cfg.model == "mosaic" else None  # the authors' protocols: mm.yaml clips, base.yaml does not
    log(f"{cfg.model}: {model.num_params():,} parameters; {budget.describe()}; grad clip "
        f"{clip if clip else 'none'} ({'mm.yaml' if clip else 'base.yaml'})")
    res = train_regbench(model, data, budget, seed=cfg.seed, grad_clip=clip, test_subset=cfg.test_subset, log=log,
                         device=device, progress=cfg.progress, files=_files(cfg, model), **run)
    return model, res, dict(task="regbench", envs=cfg.envs, n_heldout=cfg.n_test, data_seed=cfg.data_seed)


def _stream(cfg: IclConfig, device, log, run: dict):
    from .induction import Bigram, InductionTask, induction_metrics
    from .mqar import mqar_accuracy, mqar_batch

    budget = stream_budget(cfg.budget, cfg.steps, cfg.lr)
    test_rng = np.random.default_rng(10_000 + cfg.data_seed)  # the fixed test batch: its own seed
    if cfg.task == "induction":
        if cfg.corpus:
            text = Path(cfg.corpus).read_text(encoding="utf-8")
            bigram, src, T = Bigram.from_text(text), f"characters of {cfg.corpus}", cfg.seq_len or 256
        else:
            bigram = Bigram.random(cfg.vocab or 32, 4, np.random.default_rng(cfg.data_seed))
            src, T = "random sparse bigram (CPU fallback, §2.4)", cfg.seq_len or 64
        task = InductionTask(bigram, n_triggers=cfg.triggers, fixed_triggers=not cfg.random_triggers, seq_len=T)
        tx, ty, touts = (torch.from_numpy(a).to(device) for a in task.sample(cfg.test_batch, test_rng))
        V = bigram.vocab_size
        log(f"induction head: {src}, V={V}, T={T}, K={cfg.triggers} "
            f"{'random' if cfg.random_triggers else 'fixed'} triggers; test batch {cfg.test_batch}")

        def sample(rng):
            x, y, _ = task.sample(budget.batch_size, rng)
            return x, y

        def evaluate(model):
            return induction_metrics(model(tx), ty, touts)

        info = dict(task="induction", vocab_size=V, seq_len=T, triggers=cfg.triggers,
                    random_triggers=cfg.random_triggers, bigram=src)
    else:
        T, D, V = cfg.seq_len or 64, cfg.pairs, cfg.vocab or 8192
        tx, ty = (torch.from_numpy(a).to(device) for a in mqar_batch(cfg.test_batch, T, D, V, test_rng))
        log(f"MQAR: V={V}, L={T}, D={D}; test batch {cfg.test_batch}")

        def sample(rng):
            return mqar_batch(budget.batch_size, T, D, V, rng)

        def evaluate(model):
            return dict(accuracy=mqar_accuracy(model(tx), ty))

        info = dict(task="mqar", vocab_size=V, seq_len=T, pairs=D)
    torch.manual_seed(cfg.seed)  # the initialisation
    model = build_icl_model(cfg.model, n_layer=cfg.layers or 1, vocab_size=V, block_size=T, dropout=False)
    model = model.to(device)
    log(f"{cfg.model}: {cfg.layers or 1} layer(s), {model.num_params():,} parameters; {budget.describe()}; "
        f"grad clip 1.0")
    res = train_stream(model, sample, evaluate, budget, seed=cfg.seed, grad_clip=1.0, log=log, device=device,
                       progress=cfg.progress, files=_files(cfg, model), **run)
    return model, res, info


def _run_config(cfg: IclConfig) -> dict:
    """The fields a resumed run must share with its checkpoint (train_config.json)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in RESUME_MUTABLE}


def _files(cfg: IclConfig, model) -> dict:
    """The JSON files of each checkpoint: the model's config and the run's (what resume must match)."""
    return {"model_config.json": model.config.to_dict(), "train_config.json": _run_config(cfg)}


def run_icl(cfg: IclConfig) -> dict:
    """Train one model (cfg.model) on one task and write results.json and a plot under cfg.out; or, with
    cfg.compare, train the compared models one after the other in this process and write the comparison.
    Checkpoints go to cfg.out (ckpt-<step>/, every evaluation); cfg.resume continues from the newest one.
    Under torchrun: DDP, and {} on processes other than 0 (which write nothing)."""
    if cfg.compare:
        for _, child in compare_runs(cfg):
            run_icl(child)
        return summarize_compare(cfg)
    if cfg.model is None:
        raise ConfigError("give model (mosaic or transformer) or compare=True", key="model")
    if not cfg.out:
        raise ConfigError("no output directory given", key="out")
    D.check_divisible(BATCH_SIZE, "the batch size")  # before any process waits for the others
    out = check_out(cfg.out, cfg.resume)  # on every process before the process group forms: before any write
    torch.set_num_threads(cfg.threads)
    info, device = D.setup(cfg.device)
    try:
        return _run_one(cfg, out, info, device)
    finally:
        D.teardown()


def _run_one(cfg: IclConfig, out: Path, info: D.DistInfo, device: torch.device) -> dict:
    amp = autocast_dtype(cfg.dtype, device)
    prefix = f"[{cfg.tag}] " if cfg.tag else ""

    def log(msg):
        if info.main:
            print(prefix + msg, flush=True)

    resume = None
    if cfg.resume:
        resume = resume_run(out, _run_config(cfg), log=log)
        log(f"resuming {out} at step {resume[1]['step']}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    run = dict(out=out, resume=resume, amp=amp, info=info)
    model, res, task_info = (_regbench if cfg.task == "regbench" else _stream)(cfg, device, log, run)
    res = dict(accuracy=res.pop("accuracy"), tvd=res.pop("tvd"), model=cfg.model, seed=cfg.seed,
               params=model.num_params(), config=model.config.to_dict(), **task_info, **res,
               threads=cfg.threads, processes=info.world, wall_seconds=time.time() - t0)
    if not info.main:
        return {}
    (out / "results.json").write_text(dumps(res, indent=1))
    report.plot_run(res, out / "curve.png", f"{cfg.task}: {cfg.model} ({res['config']['n_layer']} layers)")
    tvd = "" if res["tvd"] is None else f"  TVD {res['tvd']:.3f}"
    log(f"{cfg.model}: test accuracy {res['accuracy']:.3f}{tvd}  (best step {res.get('best_step', res['steps'])}, "
        f"{res['wall_seconds']:.0f}s) -> {out / 'results.json'}")
    return res


def _compared(cfg: IclConfig) -> list[tuple[str, str, int]]:
    """(name, model, layers) of a comparison: RegBench MM vs transformer at cfg.layers; induction/MQAR: MM at
    cfg.layers vs transformers with 1 and 2 layers."""
    if cfg.task == "regbench":
        return [("mosaic", "mosaic", cfg.layers or 2), ("transformer", "transformer", cfg.layers or 2)]
    return [(f"mosaic-{cfg.layers or 1}L", "mosaic", cfg.layers or 1),
            ("transformer-1L", "transformer", 1), ("transformer-2L", "transformer", 2)]


def compare_runs(cfg: IclConfig) -> list[tuple[str, IclConfig]]:
    """The runs of a comparison, each a single-model config writing to cfg.out/<name>. With cfg.resume, the runs
    that have a checkpoint continue and the others start; without it, a run folder holding a run is refused."""
    D.refuse_torchrun("mosaic icl --compare", "runs its models in processes of its own (torchrun trains one: --model)")
    children = []
    for name, model, layers in _compared(cfg):
        out = Path(cfg.out) / name
        resume = cfg.resume and ckpt_io.has_checkpoint(out)
        check_out(out, resume)
        children.append((name, replace(cfg, compare=False, model=model, layers=layers, out=str(out), tag=name,
                                       resume=resume)))
    return children


def summarize_compare(cfg: IclConfig, t0: float | None = None) -> dict:
    """The table, figure and compare.json of a comparison whose runs (compare_runs) have finished."""
    t0 = time.time() if t0 is None else t0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {name: json.loads((out / name / "results.json").read_text()) for name, _, _ in _compared(cfg)}
    if cfg.task == "regbench":
        from .metrics import score_distributions
        from .ngram import ngram_probs
        from .regbench import generate

        data = generate(seed=cfg.data_seed, n_train=1, n_test=cfg.n_test)
        test = data.test[: cfg.test_subset] if cfg.test_subset else data.test
        ngram = {name: score_distributions([ngram_probs(e.inputs, o) for e in test], test)
                 for name, o in (("unigram", 1), ("trigram", 3))}
        table = report.regbench_table({"mosaic": results["mosaic"], "transformer": results["transformer"]},
                                      cfg.envs, ngram)
        first = results["mosaic"]
        header = (f"RegBench, N = {cfg.envs} training automata, {first['n_test']} test automata, seed {cfg.seed}; "
                  f"{Budget(**first['budget']).describe()}")
        report.plot_compare(results, out / "compare.png", f"RegBench N={cfg.envs}: training", n_train=cfg.envs)
    else:
        ngram = None
        table = report.stream_table(results)
        first = next(iter(results.values()))
        header = f"{cfg.task}: {Budget(**first['budget']).describe()}"
        report.plot_compare(results, out / "compare.png", f"{cfg.task}: loss and test acc_end")
    text = f"{header}\n\n{table}\n"
    if cfg.budget == "demo" and cfg.task == "regbench":
        text += ("\nThis is the reduced demo budget; the paper's numbers are for the full protocol "
                 "(`--budget full`: 200 epochs, lr 5e-4).\n")
    print("\n" + text, flush=True)
    summary = dict(task=cfg.task, header=header, table=table, ngram=ngram, wall_seconds=time.time() - t0,
                   results={k: {kk: v for kk, v in r.items() if kk not in ("history",)} for k, r in results.items()})
    (out / "compare.json").write_text(dumps(summary, indent=1))
    (out / "table.md").write_text(text)
    print(f"wrote {out / 'table.md'}, {out / 'compare.png'} ({time.time() - t0:.0f}s)", flush=True)
    return summary
