"""Where the Memory Mosaic's extra training-step time goes on CPU (issue 15), three ways, each side by side with the
transformer in one process (interleaved, medians, this process's CPU time):

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/step_breakdown.py [--repeats 9] [--parts functions ceilings overhead native]

- functions: ms per step spent inside each hand-written autograd Function (forward and backward), in the real step
  (the native kernels' Functions when they are built, the PyTorch ones with MEMORY_MOSAICS_NATIVE=0).
- ceilings: transformer / Memory Mosaic step-time ratio when the key path or the value path is replaced by a near-free
  stand-in (s·x: NOT the model — an upper bound on what making that part faster could give).
- native: the step with the native CPU kernels (ops/cpu_kernels/) on and off, interleaved with the transformer's.
- overhead: fixed cost per step at batch 1, T 16 (compute ≈ 0: Python, dispatch and small ops), with the number of
  aten ops forward / backward / AdamW.

Cases: core (vocab 256, batch 2, T 1024) and `small` (vocab 4096, batch 8, T 256); 4 layers, d 128, 4 heads.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import memory_mosaics.layers.key_extractor as key_extractor
import memory_mosaics.layers.value_extractor as value_extractor
from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig
from memory_mosaics.ops import cpu_kernels, key_path, native_paths, normalize, strict_past

CASES = ((256, 2, 1024), (4096, 8, 256))


def models(V: int, T: int) -> dict:
    torch.manual_seed(0)
    over = dict(vocab_size=V, block_size=T, dropout=0.0)
    return {"mosaic": MemoryMosaic(MosaicConfig.preset("small", cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, **over)),
            "transformer": Transformer(TransformerConfig.preset("small", **over))}


def timed_steps(ms: dict, V: int, B: int, T: int, repeats: int, on_repeat=None, on_model=None) -> dict:
    """Median step time (ms) of each model, interleaved; on_repeat(r) is called before each round, on_model(k)
    before each model's step."""
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in ms.items()}
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    times = {k: [] for k in ms}
    for r in range(repeats + 2):  # two warm-up rounds
        if on_repeat:
            on_repeat(r)
        for k, m in ms.items():
            if on_model:
                on_model(k)
            t0 = time.process_time()
            loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            if r >= 2:
                times[k].append(time.process_time() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _timer(f, key: str, spent: dict):
    def timed(ctx, *a):
        t0 = time.process_time()
        out = f(ctx, *a)
        spent[key] += time.process_time() - t0
        return out
    return staticmethod(timed)


TIMED = (("key path", key_path._LeakyNormalize), ("value norm", normalize._ScaledL2Normalize),
         ("native key path", native_paths._NativeKeyPath), ("native value norm", native_paths._NativeValuePath),
         ("strict past", strict_past._StrictPastSelf))


def functions(repeats: int) -> None:
    spent = collections.defaultdict(float)
    for name, cls in TIMED:
        for phase in ("forward", "backward"):
            setattr(cls, f"_untimed_{phase}", getattr(cls, phase))
            setattr(cls, phase, _timer(getattr(cls, phase), f"{name} {phase}", spent))
    try:
        for V, B, T in CASES:
            med = timed_steps(models(V, T), V, B, T, repeats, on_repeat=lambda r: r == 2 and spent.clear())
            print(f"vocab {V} B {B} T {T}: step mosaic {med['mosaic']:.1f} ms, transformer {med['transformer']:.1f} ms;"
                  " inside the Functions, ms per step: " + ", ".join(f"{k} {1e3 * v / repeats:.2f}" for k, v in spent.items()))
    finally:
        for _, cls in TIMED:
            for phase in ("forward", "backward"):
                setattr(cls, phase, staticmethod(getattr(cls, f"_untimed_{phase}")))


def native(repeats: int) -> None:
    """The step with the native CPU kernels on and off (MEMORY_MOSAICS_NATIVE, read at every call), interleaved
    with the transformer's in one process."""
    if not cpu_kernels.available():
        print(f"native: not available ({cpu_kernels.unavailable_reason()})")
        return
    for V, B, T in CASES:
        ms = models(V, T)
        ms["mosaic native off"] = models(V, T)["mosaic"]  # the same weights (seed 0)
        with _env(cpu_kernels.ENV):
            med = timed_steps(ms, V, B, T, repeats,
                              on_model=lambda k: os.environ.__setitem__(cpu_kernels.ENV, "0" if "off" in k else "1"))
        on, off, tr = med["mosaic"], med["mosaic native off"], med["transformer"]
        print(f"vocab {V} B {B} T {T}: step mosaic native {on:.1f} ms, PyTorch paths {off:.1f} ms, transformer "
              f"{tr:.1f} ms; transformer / mosaic {tr / on:.3f} (native) vs {tr / off:.3f} (PyTorch paths)")


@contextmanager
def _env(name: str):
    """Restore environment variable `name` afterwards."""
    old = os.environ.get(name)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextmanager
def stand_in(part: str):
    """Replace the key path and/or the value path by s·x (a measurement device only: the model is no longer right)."""
    saved = key_extractor.leaky_normalize, value_extractor.scaled_l2_normalize_fast
    if part in ("key path", "both"):
        key_extractor.leaky_normalize = lambda x, b, s, chunk: x * s.view(-1, 1, 1)
    if part in ("value path", "both"):
        value_extractor.scaled_l2_normalize_fast = lambda x, s, gamma: x * (s * gamma).view(-1, 1, 1)
    try:
        yield
    finally:
        key_extractor.leaky_normalize, value_extractor.scaled_l2_normalize_fast = saved


def ceilings(repeats: int) -> None:
    for V, B, T in CASES:
        out = []
        for part in ("none", "key path", "value path", "both"):
            with stand_in(part):
                med = timed_steps(models(V, T), V, B, T, repeats)
            out.append(f"{part} {med['transformer'] / med['mosaic']:.3f}")
        print(f"vocab {V} B {B} T {T}: transformer / mosaic with a free stand-in for: " + ", ".join(out))


def overhead(repeats: int) -> None:
    ms = models(256, 256)
    x = torch.randint(0, 256, (1, 16))
    for k, m in ms.items():
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        parts, counts = {"forward": [], "backward": [], "AdamW": []}, {}
        for r in range(repeats * 4 + 5):
            t0 = time.process_time()
            loss = F.cross_entropy(m(x).flatten(0, 1), x.flatten())
            t1 = time.process_time()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.process_time()
            opt.step()
            t3 = time.process_time()
            if r >= 5:
                for n, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                    parts[n].append(dt)
        with profile(activities=[ProfilerActivity.CPU]) as p:
            loss = F.cross_entropy(m(x).flatten(0, 1), x.flatten())
        counts["forward"] = sum(e.name.startswith("aten::") for e in p.events())
        opt.zero_grad(set_to_none=True)
        with profile(activities=[ProfilerActivity.CPU]) as p:
            loss.backward()
        counts["backward"] = sum(e.name.startswith("aten::") for e in p.events())
        with profile(activities=[ProfilerActivity.CPU]) as p:
            opt.step()
        counts["AdamW"] = sum(e.name.startswith("aten::") for e in p.events())
        print(f"{k:11s} B 1 T 16: " + ", ".join(f"{n} {1e3 * statistics.median(v):.2f} ms ({counts[n]} aten ops)"
                                               for n, v in parts.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--parts", nargs="+", default=["functions", "ceilings", "overhead"],
                    choices=["functions", "ceilings", "overhead", "native"])
    args = ap.parse_args()
    native = "on" if cpu_kernels.available() else f"off ({cpu_kernels.unavailable_reason()})"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); CPU time of this process; native CPU kernels {native}")
    for part in args.parts:
        globals()[part](args.repeats)


if __name__ == "__main__":
    main()
