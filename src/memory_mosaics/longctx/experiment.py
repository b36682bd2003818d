"""The long-context benchmark: train each model on multi-key retrieval at `train_len`, score it at longer lengths.

    from memory_mosaics.longctx import LongContextConfig, run_longctx
    summary = run_longctx(LongContextConfig(out="runs/longctx", steps=300, device="cuda"))   # models in turn

(`mosaic longctx --jobs N` runs the models in N child processes, cli/cmd_longctx.py.)

Six models at one width/depth (`MODELS`): Memory Mosaic v1; v2 (adaptive bandwidth, gated keys, short-term window h,
long-term memory with m ~ U[m_lo, m_hi] in training and m = m_lo at inference, SwiGLU persistent memory, v2 init);
v2 without long-term memory; v2 with m fixed at m_lo in training; the GPT-2 transformer (learned positions: past
train_len its input is cropped to the last train_len tokens, as `generate` does, marked "cropped"); the transformer
with rotary positions. Training reuses the ICL stream loop (icl/train.py: AdamW, warm-up + cosine, grad clip 1.0,
same data stream for every model); every model is scored on the same test examples.
Writes `<out>/<model>/result.json` per model and `<out>/longctx.json`, `<out>/table.md`, `<out>/longctx.png`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import ConfigError, MosaicConfig, TransformerConfig, at_least, check_choices
from ..models import MemoryMosaic, Transformer
from . import task as T

MODELS = ("v1", "v2", "v2-no-long", "v2-fixed-m", "gpt2", "rotary")
# Ablations of v2's ambiguous points (not run by default): the window reads h pairs (App. C) instead of h-1 (Eq. 10);
# one m per forward pass for all layers instead of one per layer; g, λ, β shared by the heads instead of per head.
ABLATIONS = {"v2-window-h": dict(window_convention="appc"), "v2-m-per-forward": dict(long_offset_draw="forward"),
             "v2-shared-heads": dict(v2_per_head=False)}
TRANSFORMERS = ("gpt2", "rotary")


@dataclass
class LongContextConfig:
    out: str = field(default="", metadata={"help": "output folder"})
    models: tuple[str, ...] = field(default=MODELS, metadata={
        "help": f"models to run, of {', '.join(MODELS)} and the ablations {', '.join(ABLATIONS)}"})
    data: str = field(default="../shared/data/tinystories_train_head.txt", metadata={"help": "filler stories"})
    train_len: int = field(default=256, metadata={"help": "training context (tokens = bytes)"})
    eval_lens: tuple[int, ...] = field(default=(256, 512, 1024, 2048), metadata={"help": "evaluation lengths"})
    depths: tuple[float, ...] = field(default=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                                      metadata={"help": "relative depths of the asked fact (0 = first token)"})
    n_keys: int = field(default=4, metadata={"help": "facts per context: 1 asked + n_keys-1 distractors"})
    n_queries: int = field(default=1, metadata={
        "help": "questions at the end of every example (RULER multi-query); the last asks the fact at the scored "
                "depth; training labels all of them, scoring only the last"})
    names: str = field(default="single", metadata={
        "choices": tuple(T.NAME_KINDS),
        "help": "single: first names; token: one byte per name (a one-token key); shared: first + last names, "
                "the distractors sharing a word with the asked name"})
    curriculum: float = field(default=0.0, metadata={
        "help": "fraction of the training steps over which the facts per example grow from 1 to n_keys and the "
                "training length from train_len/4 to train_len (0: off)"})
    far: bool = field(default=False, metadata={
        "help": "a fixed phrase between the name and ' is ' (the name ~30 tokens before the answer)"})
    key_density: bool = field(default=False, metadata={
        "help": "n_keys facts per train_len tokens at every length (the distractors grow with the context)"})
    lm_loss: bool = field(default=False, metadata={
        "help": "train on every next token (language modelling), not only the answer digits; scoring is unchanged"})
    n_eval: int = field(default=64, metadata={"help": "test examples per (length, depth)"})
    steps: int = field(default=300, metadata={"help": "training steps (the schedule's length)"})
    transformer_steps: Optional[int] = field(default=None, metadata={
        "help": "training steps of gpt2 and rotary (none: --steps); they need more to form the induction circuit"})
    time_limit: Optional[float] = field(default=None, metadata={
        "help": "stop each model's training after this many seconds (GPU script: fits a fixed budget)"})
    batch_size: int = field(default=32, metadata={"help": "training sequences per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (warm-up over 10 percent of the steps, cosine to lr/10)"})
    n_layer: int = field(default=2, metadata={"help": "blocks (every model)"})
    n_head: int = field(default=4, metadata={"help": "heads (every model)"})
    n_embd: int = field(default=128, metadata={"help": "width (every model; P-mem 3.5·d, SwiGLU matched)"})
    short_window: int = field(default=64, metadata={"help": "v2 short-term window h"})
    long_offset_min: int = field(default=16, metadata={"help": "v2 m_lo (also the inference offset, and fixed m)"})
    long_offset_max: int = field(default=64, metadata={"help": "v2 m_hi"})
    eval_batch: int = field(default=16, metadata={"help": "sequences per evaluation forward"})
    seed: int = field(default=0, metadata={"help": "training seed (init and data stream)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda | auto"})
    jobs: int = field(default=1, metadata={
        "help": "models trained in parallel child processes (CLI only; CUDA: they share one GPU)"})
    write_summary: bool = field(default=True, metadata={
        "help": "write longctx.json, table.md and the figure after the models (off in --jobs' child processes)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads per process"})

    def __post_init__(self) -> None:
        at_least(self, 1, "train_len", "n_keys", "n_eval", "steps", "batch_size", "n_layer", "n_head", "n_embd",
                 "short_window", "long_offset_min", "long_offset_max", "eval_batch", "jobs", "threads")
        self.models, self.eval_lens, self.depths = tuple(self.models), tuple(self.eval_lens), tuple(self.depths)
        bad = [m for m in self.models if m not in MODELS and m not in ABLATIONS]
        if bad or not self.models:
            raise ConfigError(f"models has unknown model(s) {bad}; choose from {', '.join((*MODELS, *ABLATIONS))}",
                              key="models")
        if not self.eval_lens or min(self.eval_lens) < 1:
            raise ConfigError(f"eval_lens must be positive lengths, got {self.eval_lens}", key="eval_lens")
        if not self.depths or not all(0.0 <= d <= 1.0 for d in self.depths):
            raise ConfigError(f"depths must lie in [0, 1], got {self.depths}", key="depths")
        check_choices(self)
        most, longest = T.NAME_KINDS[self.names].pool, max(self.train_len, *self.eval_lens)
        if not 1 <= self.n_keys or self.facts(longest) > most:
            raise ConfigError(f"n_keys must be ≥ 1 and the facts per context ≤ {most}, the size of the "
                              f"{self.names!r} name pool (got {self.facts(longest)} at length {longest})", key="n_keys")
        if not 1 <= self.n_queries <= self.n_keys:
            raise ConfigError(f"n_queries must be in [1, n_keys = {self.n_keys}], got {self.n_queries}",
                              key="n_queries", others=("n_keys",))
        for name, L in (("train_len", self.train_len), *(("eval_lens", L) for L in self.eval_lens)):
            shortest = T.min_length(self.facts(L), self.n_queries, self.names, self.far)
            if L < shortest:
                raise ConfigError(f"{name} must be ≥ {shortest} for {self.facts(L)} facts and "
                                  f"{self.n_queries} question(s), got {L}", key=name)
        if self.long_offset_min > self.long_offset_max:
            raise ConfigError("long_offset_min must be ≤ long_offset_max", key="long_offset_min",
                              others=("long_offset_max",))
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}", key="device")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"time_limit must be > 0 seconds, got {self.time_limit}", key="time_limit")
        at_least(self, 1, "transformer_steps")
        if not 0.0 <= self.curriculum <= 1.0:
            raise ConfigError(f"curriculum must lie in [0, 1], got {self.curriculum}", key="curriculum")
        if not 0 < self.lr < math.inf:  # also refuses nan
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}", key="lr")

    def facts(self, length: int) -> int:
        """Facts in an example of `length` tokens."""
        return T.facts_at(length, self.n_keys, self.train_len if self.key_density else 0)

    def examples(self, filler: T.Filler, n: int, length: int, depth: float | None, rng, train: bool = False,
                 progress: float = 1.0):
        """(x, y, needles) for n examples of this task at `length` (train: the labels of every question; progress:
        the fraction of training done, for the curriculum)."""
        k = self.facts(length)
        if train and self.curriculum and progress < self.curriculum:
            # facts 1 -> n_keys and the length a quarter -> all of train_len (at least what the facts need)
            k = 1 + int((k - 1) * progress / self.curriculum)
            short = round(length * (0.25 + 0.75 * progress / self.curriculum))
            length = max(short, T.min_length(k, min(self.n_queries, k), self.names, self.far) + 16)
        return T.make_batch(filler, n, length, k, depth, rng, self.lm_loss and train,
                            n_queries=min(self.n_queries, k), names=self.names, label_all=train, far=self.far)


def model_config(name: str, cfg: LongContextConfig) -> MosaicConfig | TransformerConfig:
    """The config of one of the six models (vocabulary: bytes; no dropout)."""
    common = dict(vocab_size=T.VOCAB, block_size=cfg.train_len, n_layer=cfg.n_layer, n_head=cfg.n_head,
                  n_embd=cfg.n_embd, dropout=0.0)
    if name in TRANSFORMERS:
        return TransformerConfig(**common, positions="learned" if name == "gpt2" else "rotary")
    mm = dict(common, pmem_size=round(3.5 * cfg.n_embd), cmem_attn_dropout=0.0, pmem_attn_dropout=0.0)
    if name == "v1":
        return MosaicConfig(**mm)
    lo, hi = cfg.long_offset_min, cfg.long_offset_max
    v2 = dict(mm, **MosaicConfig.V2_SWITCHES, short_window=cfg.short_window, long_offset=lo, long_offset_min=lo,
              long_offset_max=hi)
    if name == "v2-no-long":
        v2.update(long_offset=0, long_offset_min=0, long_offset_max=0)
    elif name == "v2-fixed-m":
        v2.update(long_offset_min=0, long_offset_max=0)  # m = long_offset = m_lo in training too
    v2.update(ABLATIONS.get(name, {}))
    return MosaicConfig(**v2)


def build(name: str, cfg: LongContextConfig):
    c = model_config(name, cfg)
    return MemoryMosaic(c) if isinstance(c, MosaicConfig) else Transformer(c)


def _device(cfg: LongContextConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(cfg.device)


def load_filler(cfg: LongContextConfig) -> T.Filler:
    from ..data.sources import load_documents

    if not Path(cfg.data).exists():
        raise FileNotFoundError(f"filler corpus not found: {cfg.data}")
    return T.Filler.from_documents(load_documents(cfg.data))


@torch.no_grad()
def evaluate(model, filler: T.Filler, cfg: LongContextConfig, device, lengths=None, depths=None) -> dict:
    """Exact-match accuracy {length: {depth: acc}} on fixed test examples (the same for every model).
    A learned-position transformer past its table sees the last train_len tokens (`cropped`)."""
    was = model.training
    model.eval()
    limit = model.max_context  # None: reads any length (block_size = train_len for the learned table)
    acc = {}
    for L in lengths or cfg.eval_lens:
        acc[L] = {}
        for di, depth in enumerate(depths or cfg.depths):
            rng = np.random.default_rng([12345, L, di])
            x, y, _ = cfg.examples(filler, cfg.n_eval, L, depth, rng)
            hits = []
            for i in range(0, cfg.n_eval, cfg.eval_batch):
                xb = torch.from_numpy(x[i:i + cfg.eval_batch]).to(device)
                yb = torch.from_numpy(y[i:i + cfg.eval_batch]).to(device)
                if limit is not None and L > limit:
                    xb, yb = xb[:, -limit:], yb[:, -limit:]
                hits.append(T.exact_match(model(xb), yb))
            acc[L][depth] = float(np.concatenate(hits).mean())
    model.train(was)
    return acc


def needle_distances(cfg: LongContextConfig, filler: T.Filler) -> dict:
    """Mean tokens between the asked fact and the answer, per (length, depth), on the first test examples."""
    out = {}
    for L in cfg.eval_lens:
        for di, depth in enumerate(cfg.depths):
            _, _, needles = cfg.examples(filler, min(cfg.n_eval, 16), L, depth, np.random.default_rng([12345, L, di]))
            out[f"{L}@{depth}"] = float(L - needles.mean())
    return out


def run_model(name: str, cfg: LongContextConfig, log=print, filler: T.Filler | None = None) -> dict:
    """Train one model and score it; writes <out>/<name>/result.json. filler: the corpus `prepare` loaded (None:
    load it here)."""
    from ..icl.train import Budget, train_stream

    torch.set_num_threads(cfg.threads)
    device = _device(cfg)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    filler = filler if filler is not None else load_filler(cfg)
    torch.manual_seed(cfg.seed)
    model = build(name, cfg).to(device)
    steps = cfg.transformer_steps if name in TRANSFORMERS and cfg.transformer_steps else cfg.steps
    budget = Budget("longctx", steps=steps, lr=cfg.lr, warmup=max(1, round(0.1 * steps)),
                    eval_every=max(1, steps // 5), val_subset=0, dropout=False, batch_size=cfg.batch_size)
    log(f"[{name}] {model.num_params():,} parameters on {device}; {budget.describe()}")

    drawn = [0]  # batches drawn so far: the curriculum's clock (one batch per step)

    def sample(rng):
        x, y, _ = cfg.examples(filler, cfg.batch_size, cfg.train_len, None, rng, train=True,
                               progress=drawn[0] / steps)
        drawn[0] += 1
        return x, y

    def train_accuracy(m):  # at the training length, mixed depths (the curve)
        return dict(accuracy=float(np.mean(list(evaluate(m, filler, cfg, device, [cfg.train_len], (0.25, 0.75))
                                                [cfg.train_len].values()))))

    t0 = time.time()
    res = train_stream(model, sample, train_accuracy, budget, seed=cfg.seed, grad_clip=1.0,
                       log=lambda s: log(f"[{name}] {s}"), device=device, time_limit_s=cfg.time_limit)
    t1 = time.time()
    acc = evaluate(model, filler, cfg, device)
    result = dict(model=name, params=model.num_params(), config=model.config.to_dict(),
                  cropped=model.max_context is not None,
                  accuracy={str(L): {str(d): a for d, a in row.items()} for L, row in acc.items()},
                  mean_by_length={str(L): float(np.mean(list(row.values()))) for L, row in acc.items()},
                  final_train_loss=res["history"][-1]["loss"], steps_done=res["steps"], evals=res["evals"],
                  train_seconds=t1 - t0, eval_seconds=time.time() - t1, device=str(device))
    out = Path(cfg.out) / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    log(f"[{name}] mean accuracy by length {result['mean_by_length']} ({t1 - t0:.0f}s train, "
        f"{result['eval_seconds']:.0f}s eval)")
    return result


def prepare(cfg: LongContextConfig) -> T.Filler:
    """Check what would fail late (no --out, no GPU, no corpus) and create the output folder. Returns the filler
    corpus (read once: the models and the summary's needle distances take it from here)."""
    if not cfg.out:
        raise ConfigError("no output directory given", key="out")
    _device(cfg)
    for name in cfg.models:  # a model config that cannot be built fails here, before the folder exists
        model_config(name, cfg)
    filler = load_filler(cfg)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    return filler


def summarize(cfg: LongContextConfig, t0: float, log=print, *, filler: T.Filler | None = None) -> dict:
    """longctx.json, table.md and longctx.png from the <out>/<model>/result.json of every model in cfg.models.
    filler: the corpus `prepare` returned, for the needle distances (None: load it here)."""
    from . import report

    filler = filler if filler is not None else load_filler(cfg)
    out = Path(cfg.out)
    results = {name: json.loads((out / name / "result.json").read_text()) for name in cfg.models}
    summary = dict(config=asdict(cfg), needle_distance=needle_distances(cfg, filler),
                   wall_seconds=time.time() - t0,
                   results={k: {kk: v for kk, v in r.items() if kk != "evals"} for k, r in results.items()})
    (out / "longctx.json").write_text(json.dumps(summary, indent=1))
    (out / "table.md").write_text(report.markdown(summary))
    report.plot(summary, out / "longctx.png")
    log(f"wrote {out / 'longctx.json'}, {out / 'table.md'}, {out / 'longctx.png'} ({time.time() - t0:.0f}s)")
    log("\n" + report.compact(summary))
    return summary


def run_longctx(cfg: LongContextConfig, log=print) -> dict:
    """Train and score every model in cfg.models, one after the other in this process, and write the summary.
    (`mosaic longctx --jobs N` runs the models in N child processes instead, then calls `summarize`.)"""
    filler = prepare(cfg)
    t0 = time.time()
    log(f"long-context benchmark: {len(cfg.models)} models on {cfg.device}; train at {cfg.train_len}, "
        f"evaluate at {list(cfg.eval_lens)}")
    for name in cfg.models:
        run_model(name, cfg, log, filler)
    return summarize(cfg, t0, log, filler=filler) if cfg.write_summary else {}
