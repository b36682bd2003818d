#!/usr/bin/env bash
# The six-model long-context comparison (docs/long_context.md) on one CUDA GPU, in under 4 minutes.
#
#   PYTHONPATH=src OUT=/tmp/out bash scripts/gpu_longctx.sh          # GPU (python3 with torch, no venv needed)
#   SHRINK=1 OUT=/tmp/out bash scripts/gpu_longctx.sh                # CPU smoke test of the same pipeline (~1 min)
#   EXTRA="--names token --n-keys 3 --key-density true --far true" ...  # more flags (here: the far-names variant)
#
# Trains Memory Mosaic v1, v2, v2 without long-term memory, v2 with fixed m, GPT-2 and the rotary transformer on
# multi-key retrieval at 256 tokens and scores them at 256/512/1024/2048 (`mosaic longctx`, all six processes
# sharing the one GPU). Leaves 5 files in "$OUT": log.txt, env.txt, longctx.json, table.md, longctx.png; the
# compact table (accuracy % by length, mean over depths) is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_longctx}
PY=${PYTHON:-python3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "${SHRINK:-0}" = "1" ]; then
  export OMP_NUM_THREADS=1
  ARGS=(--device cpu --jobs 2 --steps 3 --batch-size 2 --train-len 160 --eval-lens 160 320 --depths 0.2 0.8
        --n-eval 4 --eval-batch 2 --n-layer 1 --n-embd 16 --n-head 2 --short-window 16 --long-offset-min 4
        --long-offset-max 8 --time-limit 60)
  LIMIT=600
else
  # All six at once on the GPU; each trains for STEPS (1500) steps or TIME_LIMIT (120) seconds, whichever comes first (the table
  # reports the steps done), so the whole run fits 4 minutes whatever the GPU's speed.
  ARGS=(--device cuda --jobs 6 --steps "${STEPS:-1500}" --time-limit "${TIME_LIMIT:-120}" --batch-size 32 --lr 2e-3
        --train-len 256
        --eval-lens 256 512 1024 2048 --depths 0.1 0.3 0.5 0.7 0.9 1.0 --n-eval 64 --eval-batch 32
        --n-layer 2 --n-embd 128 --n-head 4 --short-window 64 --long-offset-min 16 --long-offset-max 64)
  LIMIT=225
fi
# shellcheck disable=SC2206  # EXTRA is split into flags on purpose
ARGS+=(${EXTRA:-})

{
  date -u
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda',
torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  echo "mosaic longctx ${ARGS[*]}"
} > "$OUT/env.txt" 2>&1

status=0
timeout "$LIMIT" "$PY" -m memory_mosaics.cli longctx --out "$WORK" "${ARGS[@]}" > "$OUT/log.txt" 2>&1 || status=$?
for f in longctx.json table.md longctx.png; do
  [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/"
done
tail -n 5 "$OUT/log.txt"
if [ "$status" != 0 ]; then
  echo "gpu_longctx: mosaic longctx failed or timed out (exit $status); see $OUT/log.txt"
  # Whatever models finished: their per-model results, as a table.
  "$PY" - "$WORK" <<'PY' || true
import json, sys
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob("*/result.json")):
    r = json.loads(p.read_text())
    print(r["model"], {k: round(100 * v, 1) for k, v in r["mean_by_length"].items()}, f"{r['train_seconds']:.0f}s")
PY
  exit "$status"
fi
echo
"$PY" - "$OUT/longctx.json" <<'PY'
import json, sys
from memory_mosaics.longctx import report
s = json.loads(open(sys.argv[1]).read())
for name, r in s["results"].items():
    print(f"{name}: {r['steps_done']} steps in {r['train_seconds']:.0f}s, eval {r['eval_seconds']:.0f}s, "
          f"final loss {r['final_train_loss']:.3f}")
print(f"total {s['wall_seconds']:.0f}s\n")
print(report.compact(s))
PY
