"""One ICL run (task × model) -> results.json + plot, and the side-by-side comparison behind `mosaic icl`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..jsonsafe import dumps
from . import report
from .models import build_icl_model
from .train import Budget, regbench_budget, train_regbench, train_stream

STREAM_BUDGETS = {"demo": dict(steps=300, eval_every=50), "full": dict(steps=3000, eval_every=250)}


def stream_budget(name: str, steps=None, lr=None) -> Budget:
    if name not in STREAM_BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose demo or full")
    b = Budget(name, lr=1e-3, warmup=0, val_subset=0, dropout=False, **STREAM_BUDGETS[name])
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be ≥ 1, got {steps}")
        b.steps, b.eval_every = steps, min(b.eval_every, max(1, steps // 6))
    if lr is not None:
        if not 0 < lr < float("inf"):  # also refuses nan
            raise ValueError(f"--lr must be a finite number > 0, got {lr}")
        b.lr = lr
    b.warmup = max(1, round(0.1 * b.steps))
    return b


def _regbench(args, log):
    from .regbench import generate

    budget = regbench_budget(args.budget, args.envs, args.steps, args.lr, None if args.dropout is None
                             else args.dropout == "on")
    t = time.time()
    data = generate(seed=args.data_seed, n_train=args.envs, n_test=args.n_test)
    log(f"RegBench: {len(data.train)} train / {len(data.test)} test / {len(data.val)} val automata "
        f"(data seed {args.data_seed}, generated in {time.time() - t:.1f}s)")
    model = build_icl_model(args.model, n_layer=args.layers or 2, dropout=budget.dropout)
    clip = 1.0 if args.model == "mosaic" else None  # the authors' protocols: mm.yaml clips, base.yaml does not
    log(f"{args.model}: {model.num_params():,} parameters; {budget.describe()}; grad clip "
        f"{clip if clip else 'none'} ({'mm.yaml' if clip else 'base.yaml'})")
    res = train_regbench(model, data, budget, seed=args.seed, grad_clip=clip, test_subset=args.test_subset, log=log)
    return model, res, dict(task="regbench", envs=args.envs, n_heldout=args.n_test, data_seed=args.data_seed)


def _stream(args, log):
    from .induction import Bigram, InductionTask, induction_metrics
    from .mqar import mqar_accuracy, mqar_batch

    budget = stream_budget(args.budget, args.steps, args.lr)
    test_rng = np.random.default_rng(10_000 + args.data_seed)  # the fixed test batch: its own seed
    if args.task == "induction":
        if args.corpus:
            text = Path(args.corpus).read_text(encoding="utf-8")
            bigram, src, T = Bigram.from_text(text), f"characters of {args.corpus}", args.seq_len or 256
        else:
            bigram = Bigram.random(args.vocab or 32, 4, np.random.default_rng(args.data_seed))
            src, T = "random sparse bigram (CPU fallback, §2.4)", args.seq_len or 64
        task = InductionTask(bigram, n_triggers=args.triggers, fixed_triggers=not args.random_triggers, seq_len=T)
        tx, ty, touts = (torch.from_numpy(a) for a in task.sample(args.test_batch, test_rng))
        V = bigram.vocab_size
        log(f"induction head: {src}, V={V}, T={T}, K={args.triggers} "
            f"{'random' if args.random_triggers else 'fixed'} triggers; test batch {args.test_batch}")

        def sample(rng):
            x, y, _ = task.sample(budget.batch_size, rng)
            return x, y

        def evaluate(model):
            return induction_metrics(model(tx), ty, touts)

        info = dict(task="induction", vocab_size=V, seq_len=T, triggers=args.triggers,
                    random_triggers=args.random_triggers, bigram=src)
    else:
        T, D, V = args.seq_len or 64, args.pairs, args.vocab or 8192
        tx, ty = (torch.from_numpy(a) for a in mqar_batch(args.test_batch, T, D, V, test_rng))
        log(f"MQAR: V={V}, L={T}, D={D}; test batch {args.test_batch}")

        def sample(rng):
            return mqar_batch(budget.batch_size, T, D, V, rng)

        def evaluate(model):
            return dict(accuracy=mqar_accuracy(model(tx), ty))

        info = dict(task="mqar", vocab_size=V, seq_len=T, pairs=D)
    model = build_icl_model(args.model, n_layer=args.layers or 1, vocab_size=V, block_size=T, dropout=False)
    log(f"{args.model}: {args.layers or 1} layer(s), {model.num_params():,} parameters; {budget.describe()}; "
        f"grad clip 1.0")
    res = train_stream(model, sample, evaluate, budget, seed=args.seed, grad_clip=1.0, log=log)
    return model, res, info


def run_one(args) -> dict:
    """Train one model on one task; write results.json and a plot under args.out."""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"[{args.tag}] " if args.tag else ""

    def log(msg):
        print(prefix + msg, flush=True)

    t0 = time.time()
    model, res, info = (_regbench if args.task == "regbench" else _stream)(args, log)
    res = dict(accuracy=res.pop("accuracy"), tvd=res.pop("tvd"), model=args.model, seed=args.seed,
               params=model.num_params(), config=model.config.to_dict(), **info, **res,
               threads=args.threads, wall_seconds=time.time() - t0)
    (out / "results.json").write_text(dumps(res, indent=1))
    report.plot_run(res, out / "curve.png", f"{args.task}: {args.model} ({res['config']['n_layer']} layers)")
    tvd = "" if res["tvd"] is None else f"  TVD {res['tvd']:.3f}"
    log(f"{args.model}: test accuracy {res['accuracy']:.3f}{tvd}  (best step {res.get('best_step', res['steps'])}, "
        f"{res['wall_seconds']:.0f}s) -> {out / 'results.json'}")
    return res


def _child_argv(args, model: str, layers: int, out: Path, threads: int, tag: str) -> list[str]:
    argv = [sys.executable, "-m", "memory_mosaics.cli", "icl", "--task", args.task, "--model", model,
            "--layers", str(layers), "--seed", str(args.seed), "--data-seed", str(args.data_seed),
            "--budget", args.budget, "--out", str(out), "--threads", str(threads), "--tag", tag,
            "--envs", str(args.envs), "--n-test", str(args.n_test), "--triggers", str(args.triggers),
            "--pairs", str(args.pairs), "--test-batch", str(args.test_batch)]
    for flag, value in (("--steps", args.steps), ("--lr", args.lr), ("--test-subset", args.test_subset),
                        ("--corpus", args.corpus), ("--seq-len", args.seq_len), ("--vocab", args.vocab),
                        ("--dropout", args.dropout)):
        if value is not None:
            argv += [flag, str(value)]
    if args.random_triggers:
        argv.append("--random-triggers")
    return argv


def run_compare(args) -> dict:
    """Train the compared models (RegBench: MM vs transformer at --layers; induction/MQAR: MM at --layers vs
    transformers with 1 and 2 layers), in parallel processes of one thread each when --jobs > 1."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.task == "regbench":
        runs = [("mosaic", "mosaic", args.layers or 2), ("transformer", "transformer", args.layers or 2)]
    else:
        runs = [(f"mosaic-{args.layers or 1}L", "mosaic", args.layers or 1),
                ("transformer-1L", "transformer", 1), ("transformer-2L", "transformer", 2)]
    jobs = max(1, min(args.jobs, len(runs)))
    threads = 1 if jobs > 1 else args.threads
    print(f"mosaic icl --compare: {args.task}, {len(runs)} runs, {jobs} in parallel x {threads} thread(s)", flush=True)
    t0 = time.time()
    pending, active = list(runs), []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    while pending or active:
        while pending and len(active) < jobs:
            name, model, layers = pending.pop(0)
            active.append((name, subprocess.Popen(_child_argv(args, model, layers, out / name, threads, name),
                                                  env=env)))
        time.sleep(0.5)
        for item in list(active):
            if item[1].poll() is not None:
                active.remove(item)
                if item[1].returncode != 0:
                    for _, p in active:
                        p.terminate()
                    from ..cli import UserError

                    raise UserError(f"run '{item[0]}' failed with exit status {item[1].returncode} (its log is above)")
    results = {name: json.loads((out / name / "results.json").read_text()) for name, _, _ in runs}
    if args.task == "regbench":
        from .metrics import score_distributions
        from .ngram import ngram_probs
        from .regbench import generate

        data = generate(seed=args.data_seed, n_train=1, n_test=args.n_test)
        test = data.test[: args.test_subset] if args.test_subset else data.test
        ngram = {name: score_distributions([ngram_probs(e.inputs, o) for e in test], test)
                 for name, o in (("unigram", 1), ("trigram", 3))}
        table = report.regbench_table({"mosaic": results["mosaic"], "transformer": results["transformer"]},
                                      args.envs, ngram)
        first = results["mosaic"]
        header = (f"RegBench, N = {args.envs} training automata, {first['n_test']} test automata, seed {args.seed}; "
                  f"{Budget(**first['budget']).describe()}")
        report.plot_compare(results, out / "compare.png", f"RegBench N={args.envs}: training", n_train=args.envs)
    else:
        ngram = None
        table = report.stream_table(results)
        first = next(iter(results.values()))
        header = f"{args.task}: {Budget(**first['budget']).describe()}"
        report.plot_compare(results, out / "compare.png", f"{args.task}: loss and test acc_end")
    text = f"{header}\n\n{table}\n"
    if args.budget == "demo" and args.task == "regbench":
        text += ("\nThis is the reduced demo budget; the paper's numbers are for the full protocol "
                 "(`--budget full`: 200 epochs, lr 5e-4).\n")
    print("\n" + text, flush=True)
    summary = dict(task=args.task, header=header, table=table, ngram=ngram, wall_seconds=time.time() - t0,
                   results={k: {kk: v for kk, v in r.items() if kk not in ("history",)} for k, r in results.items()})
    (out / "compare.json").write_text(dumps(summary, indent=1))
    (out / "table.md").write_text(text)
    print(f"wrote {out / 'table.md'}, {out / 'compare.png'} ({time.time() - t0:.0f}s)", flush=True)
    return summary
