#!/usr/bin/env bash
# Issue 15 GPU checks, ~3 minutes on one H100 (+ up to 4 for the compiled step): run from the repo root (python3 with torch + triton, no venv).
#   OUT=/some/dir bash scripts/gpu_speed.sh
# Parts (each in its own try, so one failure does not hide the others; logs under $OUT):
#   1. check: Triton leaky-average kernel (through ops.leaky_average) vs the float64 reference, forward + backward,
#      fp32 and bf16, T in {1, 63, 64, 65, 1000, 2048, 4100}; then the pytest CUDA tests if pytest is installed.
#   2. kernel timing: leaky average fwd+bwd, Triton vs PyTorch chunked scan.
#   3. step: bf16 training step, d 768, 12 layers, T 2048, batch 4 — Memory Mosaic (Triton scan / torch scan) vs
#      transformer (target <= 1.3x the transformer's step time).
#   3b. step_compiled: the same step with both models under torch.compile (compile time excluded: warm-up rounds).
#   4. mosaic bench --device cuda --dtype bfloat16 (small preset + core case, short).
# Prints a compact table last; JSON files under $OUT.
set -u
export PYTHONPATH=src
OUT=${OUT:-gpu_out}
export OUT
mkdir -p "$OUT"
PY=${PYTHON:-python3}
status=0
part() {  # part NAME TIMEOUT_S CMD...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then tail -n 4 "$OUT/$name.log"; else
    echo "!! $name failed (rc $?): last lines of $OUT/$name.log:"; tail -n 15 "$OUT/$name.log"; status=1; fi
}
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" || status=1
part check 40 $PY scripts/gpu_speed.py check
if $PY -c "import pytest" 2>/dev/null; then
  part tests 70 $PY -m pytest -q -p no:cacheprovider tests/ops/test_leaky_average_triton.py tests/ops/test_leaky_average.py
else echo "== tests: pytest not installed here; the check part above covers the kernel"; fi
part kernel 30 $PY scripts/gpu_speed.py kernel
part step 75 $PY scripts/gpu_speed.py step
part step_compiled 240 $PY scripts/gpu_speed.py step_compiled
part bench 100 $PY -m memory_mosaics.cli bench --device cuda --dtype bfloat16 --seq-lens 256 1024 4096 \
  --gen-contexts 256 1024 --gen-new-tokens 64 --repeats 3 --out "$OUT/bench.json"
$PY scripts/gpu_speed.py table || status=1
exit $status
