"""GPU speed checks for issue 15, one part per call (scripts/gpu_speed.sh runs them, each in its own try).

    PYTHONPATH=src python3 scripts/gpu_speed.py check   # kernel vs reference, fwd + bwd, fp32/bf16 (no pytest needed)
    PYTHONPATH=src python3 scripts/gpu_speed.py step    # bf16 step time, d 768, 12 layers, T 2048: MM vs transformer
    PYTHONPATH=src python3 scripts/gpu_speed.py kernel  # leaky average: Triton kernel vs PyTorch chunked scan
    PYTHONPATH=src python3 scripts/gpu_speed.py table   # compact table from the JSON files under $OUT

Every timing is side by side in one process, interleaved, median of several repeats, CUDA-synchronised.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(os.environ.get("OUT", "gpu_out"))
DEV = os.environ.get("GPU_SPEED_DEVICE", "cuda")  # "cpu": a smoke run of this script's logic, nothing more


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _timeit(fns: dict, repeats: int, warmup: int = 2) -> dict:
    for f in fns.values():
        for _ in range(warmup):
            f()
    _sync()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync()
            t0 = time.perf_counter()
            f()
            _sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def part_step(compiled: bool = False) -> None:
    """bf16 training step (fwd + bwd + AdamW), `paper` width: d 768, 12 heads, 12 layers, T 2048, batch 4.
    compiled: both models under torch.compile (the element-wise passes fused), written to step_compiled.json."""
    import importlib

    from memory_mosaics import MemoryMosaic, MosaicConfig, Transformer, TransformerConfig

    la = importlib.import_module("memory_mosaics.ops.leaky_average")
    T, B = int(os.environ.get("GPU_T", 2048)), int(os.environ.get("GPU_BATCH", 4))
    over = dict(block_size=T, n_layer=int(os.environ.get("GPU_LAYERS", 12)), dropout=0.0)
    torch.manual_seed(0)
    models = {
        "mosaic": MemoryMosaic(MosaicConfig.preset("paper", cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, **over)),
        "transformer": Transformer(TransformerConfig.preset("paper", **over)),
    }
    models = {k: m.to(DEV, torch.bfloat16) for k, m in models.items()}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=DEV == "cuda") for k, m in models.items()}
    if compiled:
        models = {k: torch.compile(m) for k, m in models.items()}
    x = torch.randint(0, 50304, (B, T), device=DEV)

    def use_triton():
        return True

    def no_triton():
        return False

    def step(name, triton=True):
        def run():  # the same two functions every call: a compiled graph's guard on them never changes
            la._triton_ok = use_triton if triton else no_triton
            loss = F.cross_entropy(models[name](x).flatten(0, 1).float(), x.flatten())
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
        return run

    original = la._triton_ok
    fns = {"mosaic (triton scan)": step("mosaic"), "mosaic (torch scan)": step("mosaic", triton=False),
           "transformer": step("transformer")}
    if compiled:  # one mosaic variant (each scan choice would compile anew)
        fns = {"mosaic (compiled)": step("mosaic"), "transformer": step("transformer")}
    try:
        med = _timeit(fns, repeats=5)
        peak = {}
        for k, f in fns.items():
            if DEV == "cuda":
                torch.cuda.reset_peak_memory_stats()
            f()
            _sync()
            peak[k] = torch.cuda.max_memory_allocated() if DEV == "cuda" else 0
    finally:
        la._triton_ok = original
    rows = [dict(variant=k, T=T, batch=B, step_ms=1e3 * v, tok_s=B * T / v, peak_gib=peak[k] / 2**30,
                 vs_transformer=v / med["transformer"]) for k, v in med.items()]
    for r in rows:
        print(f"  {r['variant']:22s} {r['step_ms']:8.1f} ms  {r['vs_transformer']:.2f}x transformer step time  "
              f"{r['peak_gib']:.1f} GiB")
    device = torch.cuda.get_device_name() if DEV == "cuda" else "cpu (smoke run)"
    name = "step_compiled" if compiled else "step"
    (OUT / f"{name}.json").write_text(json.dumps(dict(device=device, torch=torch.__version__, n_layer=over["n_layer"],
                                                      compiled=compiled, rows=rows), indent=2))


def part_kernel() -> None:
    """Leaky average fwd + bwd at (B 4, H 12, T 2048, D 64), bf16 and fp32: Triton vs the PyTorch chunked scan."""
    from memory_mosaics.ops.leaky_average import _LeakyAverage, leaky_average_chunked

    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        T = int(os.environ.get("GPU_T", 2048))
        x = torch.randn(4, T, 12, 64, device=DEV, dtype=dtype).transpose(1, 2).requires_grad_()
        b = torch.linspace(0.5, 5, 12, device=DEV).requires_grad_()

        def run(f):
            return lambda: f().backward(torch.ones_like(x))

        med = _timeit({"triton": run(lambda: _LeakyAverage.apply(x, b, 64)),
                       "torch": run(lambda: leaky_average_chunked(x, b, 64))}, repeats=20)
        rows.append(dict(dtype=str(dtype), T=T, triton_ms=1e3 * med["triton"], torch_ms=1e3 * med["torch"]))
        print(f"  leaky average fwd+bwd {dtype}: triton {1e3 * med['triton']:.3f} ms, torch {1e3 * med['torch']:.3f} ms")
    (OUT / "kernel.json").write_text(json.dumps(rows, indent=2))


def part_check() -> None:
    """Kernel vs the float64 T×T reference, forward and backward (x and b), fp32 and bf16, through the public
    `leaky_average` (which must dispatch to the Triton Function on CUDA). Works without pytest."""
    from memory_mosaics.ops import leaky_average, leaky_average_reference

    rows, ok = [], True
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        for T in (1, 63, 64, 65, 1000, 2048, 4100):
            torch.manual_seed(T)
            x = torch.randn(2, T, 4, 64, device=DEV).transpose(1, 2).to(dtype).requires_grad_()
            b = torch.tensor([0.05, 0.5, 2.0, 5.0], device=DEV, requires_grad=True)
            y = leaky_average(x, b)
            xd, bd = x.detach().double().requires_grad_(), b.detach().double().requires_grad_()
            y_ref = leaky_average_reference(xd, bd)
            g = torch.randn_like(y_ref)
            gx, gb = torch.autograd.grad(y, (x, b), g.to(dtype))
            gx_ref, gb_ref = torch.autograd.grad(y_ref, (xd, bd), g)

            def rel(a, r):
                return ((a.double() - r).abs().max() / r.abs().max().clamp_min(1e-300)).item()

            err = dict(y=rel(y, y_ref), gx=rel(gx, gx_ref), gb=rel(gb, gb_ref) if T > 1 else 0.0)
            kernel = "LeakyAverage" in type(y.grad_fn).__name__
            passed = kernel and err["y"] <= tol and err["gx"] <= tol and err["gb"] <= 10 * tol
            ok &= passed
            rows.append(dict(dtype=str(dtype), T=T, kernel=kernel, passed=passed, **err))
            print(f"  {str(dtype):15s} T {T:5d} kernel {kernel} rel err y {err['y']:.1e} dx {err['gx']:.1e} "
                  f"db {err['gb']:.1e} {'ok' if passed else 'FAIL'}")
    (OUT / "check.json").write_text(json.dumps(rows, indent=2))
    if not ok:
        raise SystemExit("kernel check failed")


def part_table() -> None:
    print("\n==== issue 15 GPU summary " + "=" * 40)
    for name in ("check", "step", "step_compiled", "kernel", "bench"):
        path = OUT / f"{name}.json"
        if not path.exists():
            print(f"[{name}] missing (that part failed: see its log under $OUT)")
            continue
        data = json.loads(path.read_text())
        if name == "check":
            bad = [r for r in data if not r["passed"]]
            worst = {d: max(r["y"] for r in data if r["dtype"] == d) for d in {r["dtype"] for r in data}}
            print(f"[check] Triton leaky average vs float64 reference, fwd+bwd, {len(data)} cases: "
                  f"{'all pass' if not bad else f'{len(bad)} FAIL'}; worst fwd rel err {worst}")
        elif name in ("step", "step_compiled"):
            print(f"[{name}] bf16, d 768, {data['n_layer']} layers, T {data['rows'][0]['T']}, batch {data['rows'][0]['batch']}, "
                  f"{data['device']}, torch {data['torch']}")
            for r in data["rows"]:
                print(f"  {r['variant']:22s} {r['step_ms']:8.1f} ms  {r['tok_s']:9.0f} tok/s  "
                      f"{r['vs_transformer']:.2f}x transformer time (target <= 1.3x)  {r['peak_gib']:.1f} GiB")
        elif name == "kernel":
            for r in data:
                print(f"[kernel] leaky avg fwd+bwd B 4, H 12, T {r['T']}, D 64, {r['dtype']:15s} triton {r['triton_ms']:.3f} ms  "
                      f"torch {r['torch_ms']:.3f} ms  ({r['torch_ms'] / r['triton_ms']:.1f}x)")
        else:
            from memory_mosaics.bench import format_table

            print("[bench]")
            print(format_table(data))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    {"check": part_check, "step": part_step, "step_compiled": lambda: part_step(compiled=True), "kernel": part_kernel,
     "table": part_table}[sys.argv[1]]()
