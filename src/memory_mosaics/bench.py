"""Side-by-side speed and memory benchmarks (`mosaic bench`, `make bench`).

Everything is measured in one process, interleaved (one repeat of every variant, then the next repeat), after
warm-up, and reported as medians and ratios: machines are noisy and absolute times mean little.

- training: forward + backward + AdamW step, tokens/s, for the Memory Mosaic fast path, its reference path, and
  the parameter-matched transformer, in two cases: the preset's vocabulary (4,096 for `small`), and the "core" case
  (vocabulary 256, fast path and transformer only) where the shared embedding/output layer does not dilute the
  memories' cost; plus memory (CUDA: peak allocated; CPU: the bytes of activations saved for
  backward, deduplicated by storage — what grows with T and differs between models).
- generation: tokens/s of cached vs uncached decoding after prompts of several lengths (cached includes the
  prompt's prefill, as a user sees it), and ms/step: one `decode_step` alone, timed over gen_new_tokens steps after
  an untimed prefill — the per-token latency, which should stay nearly flat in the context.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .config import MosaicConfig, TransformerConfig, check_choices
from .models import MemoryMosaic, Transformer

TRAIN_VARIANTS = ("mosaic-fast", "mosaic-reference", "transformer")


@dataclass
class BenchConfig:
    preset: str = "small"
    vocab_size: int = 4096
    seq_lens: tuple[int, ...] = (256, 1024, 4096)
    core_vocab: int | None = 256  # the core-only case (None: skip it); its lengths are core_seq_lens
    core_seq_lens: tuple[int, ...] = (256, 1024)
    tokens_per_batch: int = 2048
    gen_contexts: tuple[int, ...] = (256, 1024, 4096)
    gen_new_tokens: int = 128
    uncached_max_tokens: int = 128  # uncached decoding is O(context²): cap its token count at long contexts
    repeats: int = 5
    warmup: int = 2
    reference_max_len: int = 4096  # the T×T reference path is skipped above this length
    device: str = "cpu"
    dtype: str = field(default="float32", metadata={"choices": ("float32", "bfloat16", "float16")})
    skip: tuple[str, ...] = field(default_factory=tuple, metadata={"choices": ("train", "generate")})

    def __post_init__(self) -> None:
        check_choices(self)


# `mosaic bench --quick`: a smoke run in seconds (flags given with --quick override these).
QUICK = dict(preset="tiny", vocab_size=256, seq_lens=(64, 128), core_vocab=64, core_seq_lens=(64,),
             tokens_per_batch=256, gen_contexts=(32, 64), gen_new_tokens=16, uncached_max_tokens=16, repeats=3,
             warmup=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _build(variant: str, cfg: BenchConfig, block_size: int, device, dtype, vocab: int | None = None):
    torch.manual_seed(0)
    over = dict(vocab_size=vocab or cfg.vocab_size, block_size=block_size, dropout=0.0)
    if variant == "transformer":
        model = Transformer(TransformerConfig.preset(cfg.preset, **over))
    else:
        impl = "reference" if variant == "mosaic-reference" else "fast"
        model = MemoryMosaic(MosaicConfig.preset(cfg.preset, impl=impl, cmem_attn_dropout=0.0,
                                                 pmem_attn_dropout=0.0, **over))
    return model.to(device=device, dtype=dtype)


def activation_bytes(step_fn, exclude=()) -> int:
    """Bytes of the tensors autograd saves during `step_fn()`, each storage counted once, leaving out the
    storages of `exclude` (pass the model's parameters: they are saved by reference, not allocated)."""
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step_fn()
    return sum(seen.values())


def bench_training(cfg: BenchConfig, log=print) -> list[dict]:
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    rows = []
    core = cfg.core_vocab and cfg.core_vocab != cfg.vocab_size
    cases = [(cfg.core_vocab, T, True) for T in cfg.core_seq_lens] if core else []
    cases += [(cfg.vocab_size, T, False) for T in cfg.seq_lens]
    for vocab, T, core in cases:
        B = max(1, cfg.tokens_per_batch // T)
        variants = [v for v in TRAIN_VARIANTS
                    if not (v == "mosaic-reference" and (T > cfg.reference_max_len or core))]
        models = {v: _build(v, cfg, T, device, dtype, vocab) for v in variants}
        opts = {v: torch.optim.AdamW(m.parameters(), lr=1e-4) for v, m in models.items()}
        g = torch.Generator().manual_seed(T)
        x = torch.randint(0, vocab, (B, T), generator=g).to(device)
        y = torch.randint(0, vocab, (B, T), generator=g).to(device)

        def step(v, models=models, opts=opts, x=x, y=y):  # this length's models and batch
            logits = models[v](x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            opts[v].zero_grad(set_to_none=True)
            loss.backward()
            opts[v].step()

        times: dict[str, list[float]] = {v: [] for v in variants}
        memory: dict[str, int] = {}
        for v in variants:  # warm-up, and memory measured once per variant
            for _ in range(cfg.warmup):
                step(v)
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                step(v)
                _sync(device)
                memory[v] = torch.cuda.max_memory_allocated(device)
            else:
                memory[v] = activation_bytes(lambda v=v: step(v), models[v].parameters())
        for _ in range(cfg.repeats):
            for v in variants:
                _sync(device)
                t0 = time.perf_counter()
                step(v)
                _sync(device)
                times[v].append(time.perf_counter() - t0)
        for v in variants:
            med = statistics.median(times[v])
            # The spread of the ratio to the transformer over the interleaved repeats (each pair ran back to back).
            pairs = sorted(t_gpt / t for t, t_gpt in zip(times[v], times["transformer"]))
            rows.append(dict(vocab=vocab, T=T, batch=B, variant=v, step_s=med, tokens_per_s=B * T / med,
                             memory_bytes=memory[v], ratio_min=pairs[0], ratio_max=pairs[-1]))
            log(f"  train vocab={vocab:6d} T={T:5d} {v:17s} {B * T / med:10.0f} tok/s  {memory[v] / 2**20:9.1f} MiB")
        del models, opts
    return rows


def bench_generation(cfg: BenchConfig, log=print) -> list[dict]:
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    rows = []
    longest = max(cfg.gen_contexts) + cfg.gen_new_tokens
    models = {v: _build(v, cfg, longest, device, dtype).eval() for v in ("mosaic-fast", "transformer")}
    for ctx in cfg.gen_contexts:
        prompt = torch.randint(0, cfg.vocab_size, (1, ctx), generator=torch.Generator().manual_seed(ctx)).to(device)
        n_uncached = min(cfg.gen_new_tokens, max(8, cfg.uncached_max_tokens * 1024 // ctx))
        for v, model in models.items():
            result = {}
            for use_cache, n in ((True, cfg.gen_new_tokens), (False, n_uncached)):
                samples = []
                for r in range(max(1, cfg.repeats // 2) + 1):  # the first run is warm-up
                    _sync(device)
                    t0 = time.perf_counter()
                    model.generate(prompt, n, temperature=0.0, use_cache=use_cache)
                    _sync(device)
                    if r:
                        samples.append(time.perf_counter() - t0)
                result[use_cache] = (n, statistics.median(samples))
            steps = []  # decoding steps alone (after a prefill, not timed): the per-token latency
            for r in range(max(1, cfg.repeats // 2) + 1):
                _, cache = model.prefill(prompt)
                cache.reserve(ctx + cfg.gen_new_tokens)
                token = prompt[:, -1:]
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(cfg.gen_new_tokens):
                    model.decode_step(token, cache)
                _sync(device)
                if r:
                    steps.append((time.perf_counter() - t0) / cfg.gen_new_tokens)
            t_step = statistics.median(steps)
            (n_c, t_c), (n_u, t_u) = result[True], result[False]
            rows.append(dict(context=ctx, variant=v, cached_tokens=n_c, cached_s=t_c, cached_tok_s=n_c / t_c,
                             step_ms=1e3 * t_step,
                             uncached_tokens=n_u, uncached_s=t_u, uncached_tok_s=n_u / t_u,
                             speedup=(n_c / t_c) / (n_u / t_u)))
            log(f"  generate ctx={ctx:5d} {v:12s} cached {n_c / t_c:8.1f} tok/s  uncached {n_u / t_u:7.2f} tok/s"
                f"  ({(n_c / t_c) / (n_u / t_u):.1f}x)")
    return rows


def header(cfg: BenchConfig) -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
                processor=platform.processor() or platform.machine(), cpu_count=__import__("os").cpu_count(),
                threads=torch.get_num_threads(), device=cfg.device, dtype=cfg.dtype)
    if cfg.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(cfg.device))
    return info


def format_table(result: dict) -> str:
    h = result["header"]
    lines = [f"memory-mosaics bench — torch {h['torch']}, {h['device']} ({h.get('gpu', h['processor'])}), "
             f"{h['threads']} threads, {h['dtype']}, preset {result['config']['preset']}"]
    train = result.get("train", [])
    if train:
        mem_label = "peak MiB" if h["device"].startswith("cuda") else "act. MiB"
        lines += ["", f"{'vocab':>6} {'T':>5} {'variant':17s} {'tok/s':>9} {mem_label:>9}  {'vs transformer':>14}  {'fast/ref':>8}"]
        by = {(r.get("vocab"), r["T"], r["variant"]): r for r in train}
        for r in train:
            key = (r.get("vocab"), r["T"])
            gpt, ref = by.get((*key, "transformer")), by.get((*key, "mosaic-reference"))
            vs = f"{r['tokens_per_s'] / gpt['tokens_per_s']:.2f}x tok/s, {r['memory_bytes'] / gpt['memory_bytes']:.2f}x mem" if gpt else ""
            fr = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}x" if (ref and r["variant"] == "mosaic-fast") else ""
            lines.append(f"{r.get('vocab', 0):6d} {r['T']:5d} {r['variant']:17s} {r['tokens_per_s']:9.0f} "
                         f"{r['memory_bytes'] / 2**20:9.1f}  {vs:>14}  {fr:>8}")
        lines += ["", "Memory Mosaic (fast) / transformer, training tokens/s: median of the step times "
                      "[lowest–highest ratio of a back-to-back pair]"]
        for r in train:
            gpt = by.get((r.get("vocab"), r["T"], "transformer"))
            if r["variant"] == "mosaic-fast" and gpt:
                spread = f" [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]" if "ratio_min" in r else ""
                lines.append(f"  vocab {r.get('vocab', 0):5d}  T {r['T']:5d}: {r['tokens_per_s'] / gpt['tokens_per_s']:.2f}x"
                             f"{spread}")
    gen = result.get("generate", [])
    if gen:
        lines += ["", f"{'context':>7} {'model':12s} {'cached tok/s':>12} {'ms/token':>8} {'ms/step':>7} "
                      f"{'uncached tok/s':>14} {'speedup':>8}"]
        for r in gen:
            step = f"{r['step_ms']:7.2f}" if "step_ms" in r else f"{'':7s}"
            lines.append(f"{r['context']:7d} {r['variant']:12s} {r['cached_tok_s']:12.1f} {1000 / r['cached_tok_s']:8.2f} "
                         f"{step} {r['uncached_tok_s']:14.2f} {r['speedup']:7.1f}x")
    return "\n".join(lines)


def run_benchmarks(cfg: BenchConfig, log=print) -> dict:
    result = {"header": header(cfg), "config": asdict(cfg)}
    if "train" not in cfg.skip:
        log("training throughput (forward + backward + AdamW):")
        result["train"] = bench_training(cfg, log)
    if "generate" not in cfg.skip:
        log("generation (greedy, batch 1):")
        result["generate"] = bench_generation(cfg, log)
    return result


def save(result: dict, path) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
