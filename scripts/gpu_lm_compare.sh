#!/usr/bin/env bash
# Issue 11: the full language-modelling comparison matrix on one CUDA GPU, in about 4 minutes.
#
#   OUT=/tmp/out bash scripts/gpu_lm_compare.sh                    # from the repo root; python3 with torch
#   DATA_DIR=/path/to/shared/data OUT=... bash scripts/gpu_lm_compare.sh
#   GPU_SMOKE=1 DEVICE=cpu OUT=/tmp/smoke bash scripts/gpu_lm_compare.sh   # tiny settings: a CPU dry run
#
# Runs `mosaic compare` (training/compare.py) four times, float32 with TF32 off (exact matmuls at this width):
#   1-2. tiny Shakespeare (characters) and the TinyStories head (BPE 2048): `small` preset, 150 steps of
#        16 x 256, lr 3e-3 -> 3e-4, warm-up 50, wd 0.1, clip 1.0, seeds 1 2 3, both heads (gpt2, library),
#        both models (24 runs);
#   3-4. the same two corpora and flags for 1,000 steps, seed 1337, each preset's default head, both models.
# Each is scored on the fixed validation windows at 1x, 2x, 4x the training context and on the other corpus
# (out of distribution). Writes to $OUT: lm_compare.tar.gz (every compare.json, table.md, compare.png and run
# metrics; no checkpoints), lm_compare_summary.md, lm_compare_summary.json and lm_compare.log; prints the
# compact table last.
#
# Data: the two files of ../shared/data (3 MB). A GPU box that has no such folder beside the checkout: copy them
# into an ignored folder of the checkout and send it along, e.g. `mkdir -p runs/data && cp ../shared/data/
# {tinyshakespeare.txt,tinystories_train_head.txt} runs/data/` (runs/ is git-ignored; carry "runs/data"); the
# script looks in $DATA_DIR, ../shared/data, shared/data and runs/data, in that order.
set -euo pipefail
: "${OUT:?set OUT to the folder for results}"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}src"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-12}
WORK=${WORK:-$(mktemp -d /tmp/mosaic-lm-XXXXXX)}
export MOSAIC_CACHE="$WORK/cache"
mkdir -p "$OUT" "$WORK"

# The shared corpora: DATA_DIR, else ../shared/data (beside the checkout), else ./shared/data.
for d in "${DATA_DIR:-}" ../shared/data shared/data runs/data; do
  if [ -n "$d" ] && [ -f "$d/tinyshakespeare.txt" ] && [ -f "$d/tinystories_train_head.txt" ]; then DATA=$d; break; fi
done
: "${DATA:?no tinyshakespeare.txt + tinystories_train_head.txt found: set DATA_DIR to the folder holding them}"
SH="$DATA/tinyshakespeare.txt"
TS="$DATA/tinystories_train_head.txt"

PRESET=small; STEPS=150; LONG=1000; SEEDS="1 2 3"; EVAL=50; LONG_EVAL=100; WARM=50; LONG_WARM=50
EXTRA=()
if [ "${GPU_SMOKE:-0}" = 1 ]; then  # seconds on a CPU: same commands, tiny numbers
  PRESET=tiny; STEPS=4; LONG=6; SEEDS="1 2"; EVAL=2; LONG_EVAL=3; WARM=2; LONG_WARM=2; JOBS=${SMOKE_JOBS:-2}
  EXTRA=(--batch-size 4 --eval-batches 2)
fi

common=(--preset "$PRESET" --batch-size 16 --lr 3e-3 --min-lr 3e-4 --weight-decay 0.1 --grad-clip 1.0
        --dtype float32 --device "$DEVICE" --no-progress --log-interval 10 --jobs "$JOBS" "${EXTRA[@]}")
run() {  # name, data, tokenizer args..., then compare args
  local name=$1; shift
  echo "=== $name ($(date -u +%T))"
  $PY -m memory_mosaics.cli compare "${common[@]}" --out "$WORK/$name" "$@"
}
{
  t0=$(date +%s)
  run sh-150 --data "$SH" --tokenizer char --max-steps $STEPS --warmup-steps $WARM --eval-interval $EVAL \
      --seeds $SEEDS --inits gpt2 library --ood-data "$TS"
  run ts-150 --data "$TS" --tokenizer bpe --bpe-vocab-size 2048 --max-steps $STEPS --warmup-steps $WARM \
      --eval-interval $EVAL --seeds $SEEDS --inits gpt2 library --ood-data "$SH"
  run sh-1000 --data "$SH" --tokenizer char --max-steps $LONG --warmup-steps $LONG_WARM \
      --eval-interval $LONG_EVAL --seeds 1337 --ood-data "$TS" &
  run ts-1000 --data "$TS" --tokenizer bpe --bpe-vocab-size 2048 --max-steps $LONG --warmup-steps $LONG_WARM \
      --eval-interval $LONG_EVAL --seeds 1337 --ood-data "$SH" &
  wait %1 && wait %2
  echo "total $(( $(date +%s) - t0 )) s"
} 2>&1 | tee "$OUT/lm_compare.log"

tar czf "$OUT/lm_compare.tar.gz" -C "$WORK" --exclude='ckpt-*' --exclude='latest' --exclude=cache \
    sh-150 ts-150 sh-1000 ts-1000
$PY scripts/lm_summary.py "$OUT/lm_compare_summary" "$WORK"/sh-150 "$WORK"/ts-150 "$WORK"/sh-1000 "$WORK"/ts-1000
