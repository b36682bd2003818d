#!/usr/bin/env bash
# Issue 11 item 5: Memory Mosaic vs transformer at the paper's width (d 768, 12 heads, 12 blocks, context 512,
# bf16 autocast) on the TinyStories head, a fixed number of steps per model (~60-90 s each on an H100).
#
#   OUT=/tmp/out bash scripts/gpu_paper_width.sh                   # from the repo root; python3 with torch
#   STEPS=400 INITS="gpt2 library" OUT=... bash scripts/gpu_paper_width.sh
#   GPU_SMOKE=1 DEVICE=cpu OUT=/tmp/smoke bash scripts/gpu_paper_width.sh   # 2 blocks, d 64, 3 steps: a CPU dry run
#
# Both models: `paper` preset (dropout 0.05 as the authors ran), BPE 2048 trained on the head (vocabulary padded
# to a multiple of 64), 16 x 512 tokens per step, lr 1e-3 -> 1e-4, warm-up 100, wd 0.1, clip 1.0, seed 1337,
# head INITS (default gpt2: the winner at small width; add library for the paper's own head). The head holds only
# ~0.57 M tokens, so a run of a few minutes passes over it several times: watch the train/val gap.
# Writes to $OUT: paper_width.tar.gz (compare.json, table.md, compare.png, metrics; no checkpoints),
# paper_width_summary.md/.json and paper_width.log; prints tokens/s and the loss table last.
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
WORK=${WORK:-$(mktemp -d /tmp/mosaic-paper-XXXXXX)}
export MOSAIC_CACHE="$WORK/cache"
mkdir -p "$OUT" "$WORK"
for d in "${DATA_DIR:-}" ../shared/data shared/data runs/data; do
  if [ -n "$d" ] && [ -f "$d/tinystories_train_head.txt" ]; then DATA=$d; break; fi
done
: "${DATA:?no tinystories_train_head.txt found: set DATA_DIR to the folder holding it}"
STEPS=${STEPS:-600}; EVAL=${EVAL:-100}; WARM=100; INITS=${INITS:-gpt2}
ARGS=(--model-args n_layer=12 --batch-size 16 --dtype bfloat16 --eval-batches 10)
if [ "${GPU_SMOKE:-0}" = 1 ]; then
  STEPS=3; EVAL=3; WARM=1
  ARGS=(--model-args n_layer=2 --model-args n_embd=64 --model-args n_head=2 --model-args pmem_size=224 --model-args block_size=64
        --batch-size 2 --dtype float32 --eval-batches 1)
fi
{
  t0=$(date +%s)
  $PY -m memory_mosaics.cli compare --preset paper "${ARGS[@]}" --vocab-multiple 64 \
      --data "$DATA/tinystories_train_head.txt" --tokenizer bpe --bpe-vocab-size 2048 \
      --max-steps "$STEPS" --warmup-steps $WARM --eval-interval "$EVAL" --log-interval 10 \
      --lr 1e-3 --min-lr 1e-4 --weight-decay 0.1 --grad-clip 1.0 --inits $INITS --seeds 1337 \
      --contexts 1 2 4 --device "$DEVICE" --jobs 1 --no-progress --out "$WORK/paper-width"
  echo "total $(( $(date +%s) - t0 )) s"
} 2>&1 | tee "$OUT/paper_width.log"
tar czf "$OUT/paper_width.tar.gz" -C "$WORK" --exclude='ckpt-*' --exclude='latest' paper-width
$PY scripts/lm_summary.py "$OUT/paper_width_summary" "$WORK/paper-width"
$PY - "$WORK/paper-width/compare.json" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
print("\nloss curves (val loss at each evaluation; elapsed s):")
for r in rep["runs"]:
    curve = "  ".join(f"{c['step']}:{c['val_loss']:.3f}@{c['elapsed_s']:.0f}s" for c in r["curve"])
    s = r["summary"]
    print(f"  {r['model']:<11} {r['init']:<7} {s['params']:>12,} params  {s['train_tok_per_s']:>10,.0f} tok/s  {curve}")
PY
