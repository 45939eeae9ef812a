#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and PyTorch, in at most nine minutes (--budget),
#   1. the table1 training step (width/4 and full width, batch 256) beside PyTorch's on the same GPU:
#      ms/step, img/s, peak GPU memory (ours sampled from nvidia-smi, PyTorch's from its allocator); in
#      f32 first, then (1t, after the smoke comparison) with TF32 allowed on both sides (`--precision`);
#   2. the `smoke` profile on CUDA against the same runs on the CPU, computed there by candle's ops and by
#      our kernels: `eigenssl verify` with a relative tolerance of 2 % on every stored number;
#   3. the expected time of one table1 cell (cifar10/simsiam/ema, full width, 2 epochs: `gpucheck`
#      profile) and of the whole `paper` profile from training steps timed on this GPU
#      (`reproduce --dry-run`); then that cell run for real, its time per epoch; and the paper profile's
#      expected time scaled by what the measured cell spent per epoch beyond its steps (data,
#      augmentation, evaluation).
# Each section runs under a time limit; one that fails is recorded (sections.jsonl, the summary) and the
# check goes on, so that a broken part still leaves the others' measurements. All of them share one
# budget (--budget, 9 minutes: a lent GPU machine gives 15 in all, its start and a retry included): each
# section may use what is left of it, and a section reached with less than 20 s left is recorded as
# skipped. The sections come in the order of what they are worth; the one-cell run, the slowest, is last.
# Usage: ci/gpu-check.sh [--bin PATH] [--python PY] [--data-dir DIR] [--out DIR] [--cell-limit SECONDS]
#   --bin         the CUDA build (default target/cuda/release/eigenssl, from ci/build-cuda.sh), or it
#                 compressed with xz (a name ending in .xz: unpacked into a temporary file here). To carry
#                 it to another machine, strip and compress it (69 MB -> 9.4 MB):
#                 strip -o eigenssl-cuda target/cuda/release/eigenssl && xz -6 eigenssl-cuda
#   --python      a Python with torch built for CUDA (default python3); its CUDA libraries are put on
#                 LD_LIBRARY_PATH for the binary, as ci/build-cuda.sh says
#   --data-dir    where cifar10-jpeg.tar.gz (or another CIFAR-10 layout) is (default data)
#   --out         where the log, the records and gpu-check.json go (default results/gpu-check)
#   --cell-limit  seconds the 2-epoch cell may take before it is stopped (default 600; the budget caps it)
#   --budget      seconds all sections together may take (default 540)
# Exit: 0 every section that ran passed (some may be skipped for the budget: the summary says which);
# 1 a section failed (the others still ran; the summary says which); 2 bad usage, no binary, a binary
# that does not start, or no torch with CUDA; 3 no NVIDIA GPU here (nothing run, nothing written).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/cuda/release/eigenssl PY=python3 DATA=data OUT=results/gpu-check CELL_LIMIT=600 BUDGET=540
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --data-dir) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --cell-limit) CELL_LIMIT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    *) echo "gpu-check: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
if [[ "$BIN" == *.xz ]]; then [ -f "$BIN" ]; else [ -x "$BIN" ]; fi || { echo "gpu-check: no eigenssl binary at $BIN: build it with ci/build-cuda.sh, or pass --bin" >&2; exit 2; }
GPU=""
if command -v nvidia-smi > /dev/null 2>&1; then
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null | head -1 || true)
fi
[ -n "$GPU" ] || { echo "gpu-check: no NVIDIA GPU here (nvidia-smi is missing or lists none); nothing was run" >&2; exit 3; }
if [[ "$BIN" == *.xz ]]; then
  UNPACKED=$(mktemp "${TMPDIR:-/tmp}/eigenssl-gpu-check.XXXXXX")
  trap 'rm -f "$UNPACKED"' EXIT
  # xz where installed, else Python's lzma module (any Python 3 has it).
  { command -v xz > /dev/null && xz -dc "$BIN" > "$UNPACKED"; } \
    || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$BIN" "$UNPACKED" \
    || { echo "gpu-check: could not unpack $BIN (neither xz nor python3's lzma)" >&2; exit 2; }
  chmod +x "$UNPACKED"
  BIN=$UNPACKED
fi
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null \
  || { echo "gpu-check: $PY has no torch that sees the GPU (pip install torch)" >&2; exit 2; }
LIBS=$("$PY" -c 'import os, nvidia; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2> /dev/null || true)
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$BIN" list > /dev/null || {
  echo "gpu-check: $BIN does not start (CUDA libraries looked for in: $LIBS; not found: $(ldd "$BIN" | grep 'not found' | awk '{print $1}' | xargs))" >&2
  exit 2
}

mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
echo "gpu-check $(date -u +%FT%TZ): GPU $GPU; binary $BIN ($("$BIN" --version)); torch $("$PY" -c 'import torch; print(torch.__version__)')"
set +e
: > "$OUT/sections.jsonl"

# One section of the check: runs the command within what is left of the budget, records its exit code and
# seconds in sections.jsonl, and goes on when it fails, so that one broken part still leaves the others'
# measurements. `timeout` signals the command's whole process group, so nothing it started outlives it.
DEADLINE=$((SECONDS + BUDGET))
section() {
  local name=$1 t0=$SECONDS rc left=$((DEADLINE - SECONDS))
  shift
  echo "== $name"
  if [ "$left" -lt 20 ]; then
    echo "gpu-check: section '$name' skipped: ${left} s of the ${BUDGET} s budget left"
    echo "{\"section\": \"$name\", \"exit\": 125, \"seconds\": 0, \"skipped\": true}" >> "$OUT/sections.jsonl"
    return
  fi
  timeout "$left" bash -c '"$@"' section "$@"
  rc=$?
  echo "{\"section\": \"$name\", \"exit\": $rc, \"seconds\": $((SECONDS - t0))}" >> "$OUT/sections.jsonl"
  [ "$rc" -eq 0 ] || echo "gpu-check: section '$name' failed with exit $rc$([ "$rc" -eq 124 ] && echo ' (over its time limit)')"
}

# Peak GPU memory (MiB) used while a command runs, above what was used before it, sampled every 50 ms,
# written to FILE as JSON with the width.
peak_mib() {
  local file=$1 width=$2 base samples pid rc
  shift 2
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  samples=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$samples" &
  pid=$!
  "$@"
  rc=$?
  kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null
  echo "{\"width\": $width, \"gpu_peak_mib\": $(( $(sort -n "$samples" | tail -1) - base ))}" > "$file"
  rm -f "$samples"
  return $rc
}

# Our step and PyTorch's at width $1 and precision $2 (f32 or tf32, set alike on both sides).
step_pair() {
  local w=$1 p=$2 rc=0
  peak_mib "$OUT/step-ours-$w-$p.mem.json" "$w" \
    timeout 240 "$BIN" bench-step --device cuda --width "$w" --batch 256 --reps 20 --precision "$p" > "$OUT/step-ours-$w-$p.json" || rc=$?
  timeout 240 "$PY" bench/torch_reference.py --device cuda --width "$w" --batch 256 --reps 20 --precision "$p" > "$OUT/step-torch-$w-$p.json" || rc=$?
  return $rc
}

# Runs a command with its output into FILE, then shows FILE; returns the command's exit code.
logged() {
  local file=$1 rc
  shift
  "$@" > "$file" 2>&1
  rc=$?
  cat "$file"
  return $rc
}

# The smoke profile's seed 0 computed on the CPU by each kernel path, then recomputed on CUDA (which runs
# candle's ops whatever the spec asks) and compared: `candle` is the same ops on another device, `native`
# our CPU kernels against them.
smoke() {
  local k rc=0
  for k in candle native; do
    timeout 200 "$BIN" reproduce table1 --profile smoke --seeds 0 --device cpu --kernels "$k" --out "$OUT/smoke-$k" > /dev/null || return $?
    logged "$OUT/smoke-verify-$k.txt" timeout 200 "$BIN" verify table1 --profile smoke --device cuda --out "$OUT/smoke-$k" --rtol 0.02 || rc=$?
  done
  return $rc
}

plan() {
  logged "$OUT/$1-plan.txt" timeout 300 "$BIN" reproduce table1 --profile "$1" --device cuda --data-dir "$DATA" --out "$OUT/$2" --dry-run
}

export BIN PY DATA OUT
export -f peak_mib step_pair logged smoke plan
section "1. training step, width/4, batch 2x256, f32, ours beside PyTorch's on the same GPU" step_pair 0.25 f32
section "1. training step, full width, batch 2x256, f32, ours beside PyTorch's on the same GPU" step_pair 1 f32
section "2. smoke profile: CUDA against the CPU, both kernel paths (relative tolerance 2 %)" smoke
section "1t. training step, width/4, batch 2x256, tf32, ours beside PyTorch's on the same GPU" step_pair 0.25 tf32
section "1t. training step, full width, batch 2x256, tf32, ours beside PyTorch's on the same GPU" step_pair 1 tf32
section "3a. expected time of the one-cell run (steps timed on this GPU)" plan gpucheck cell
section "3b. expected time of the whole paper profile (steps timed on this GPU)" plan paper plan
section "3c. one table1 cell at full width, 2 epochs" \
  timeout "$CELL_LIMIT" "$BIN" reproduce table1 --profile gpucheck --device cuda --data-dir "$DATA" --out "$OUT/cell" --force

python3 ci/gpu_check_summary.py "$OUT" "$GPU"
FAILED=$(grep '"exit": [1-9]' "$OUT/sections.jsonl" | grep -v '"skipped": true' | sed 's/.*"section": "\([^"]*\)".*/\1/' | paste -sd ';' -)
if [ -n "$FAILED" ]; then
  echo "gpu-check: failed: $FAILED"
  exit 1
fi
