#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and PyTorch, in about five minutes,
#   1. the table1 training step (width/4 and full width, batch 256) beside PyTorch's on the same GPU:
#      ms/step, img/s, peak GPU memory (ours sampled from nvidia-smi, PyTorch's from its allocator);
#   2. the `smoke` profile on CUDA against the same runs on the CPU: `eigenssl verify` with a relative
#      tolerance of 2 % on every stored number (losses, readouts, spectra);
#   3. one table1 cell (cifar10/simsiam/ema) at full width for 2 epochs (`gpucheck` profile), its time per
#      epoch; and the expected time of the whole `paper` profile on this GPU: the training steps' time
#      (`reproduce --dry-run`, from timed steps) scaled by what the measured cell spent per epoch beyond
#      its steps (data, augmentation, evaluation).
# Usage: ci/gpu-check.sh [--bin PATH] [--python PY] [--data-dir DIR] [--out DIR]
#   --bin       the CUDA build (default target/cuda/release/eigenssl, from ci/build-cuda.sh; strip it to
#               carry it to another machine: `strip -o eigenssl-cuda target/cuda/release/eigenssl`)
#   --python    a Python with torch built for CUDA (default python3); its CUDA libraries are put on
#               LD_LIBRARY_PATH for the binary, as ci/build-cuda.sh says
#   --data-dir  where cifar10-jpeg.tar.gz (or another CIFAR-10 layout) is (default data)
#   --out       where the log, the records and gpu-check.json go (default results/gpu-check)
# Exit: 0 checked (the log says what passed); 2 bad usage, no binary or no torch with CUDA; 3 no NVIDIA GPU
# here (nothing run, nothing written).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/cuda/release/eigenssl PY=python3 DATA=data OUT=results/gpu-check
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --data-dir) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "gpu-check: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "gpu-check: no eigenssl binary at $BIN: build it with ci/build-cuda.sh, or pass --bin" >&2; exit 2; }
GPU=""
if command -v nvidia-smi > /dev/null 2>&1; then
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null | head -1 || true)
fi
[ -n "$GPU" ] || { echo "gpu-check: no NVIDIA GPU here (nvidia-smi is missing or lists none); nothing was run" >&2; exit 3; }
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null \
  || { echo "gpu-check: $PY has no torch that sees the GPU (pip install torch)" >&2; exit 2; }
LIBS=$("$PY" -c 'import os, nvidia; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2> /dev/null || true)
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$BIN" list > /dev/null || { echo "gpu-check: $BIN does not start (its CUDA libraries: $LIBS)" >&2; exit 2; }

mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
echo "gpu-check $(date -u +%FT%TZ): GPU $GPU; binary $BIN ($("$BIN" --version)); torch $("$PY" -c 'import torch; print(torch.__version__)')"

# Peak GPU memory (MiB) used while a command runs, above what was used before it: sampled every 50 ms.
peak_mib() {
  local base samples pid
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  samples=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$samples" &
  pid=$!
  "$@"
  kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null || true
  echo $(( $(sort -n "$samples" | tail -1) - base )) > "$OUT/.peak"
  rm -f "$samples"
}

echo "== 1. training step, batch 2x256, ours beside PyTorch's on the same GPU"
for w in 0.25 1; do
  peak_mib "$BIN" bench-step --device cuda --width "$w" --batch 256 --reps 20 > "$OUT/step-ours-$w.json"
  echo "{\"width\": $w, \"gpu_peak_mib\": $(cat "$OUT/.peak")}" > "$OUT/step-ours-$w.mem.json"
  "$PY" bench/torch_reference.py --device cuda --width "$w" --batch 256 --reps 20 > "$OUT/step-torch-$w.json"
done

echo "== 2. smoke profile: CUDA against CPU (relative tolerance 2 %)"
"$BIN" reproduce table1 --profile smoke --seeds 0 --device cpu --out "$OUT/smoke" > /dev/null
set +e
"$BIN" verify table1 --profile smoke --device cuda --out "$OUT/smoke" --rtol 0.02 | tee "$OUT/smoke-verify.txt"
SMOKE=${PIPESTATUS[0]}
set -e

echo "== 3. one table1 cell at full width, 2 epochs, and the paper profile's expected time"
"$BIN" reproduce table1 --profile gpucheck --device cuda --data-dir "$DATA" --out "$OUT/cell" --dry-run 2>&1 | tee "$OUT/cell-plan.txt"
"$BIN" reproduce table1 --profile gpucheck --device cuda --data-dir "$DATA" --out "$OUT/cell" --force
"$BIN" reproduce table1 --profile paper --device cuda --data-dir "$DATA" --out "$OUT/plan" --dry-run 2>&1 | tee "$OUT/paper-plan.txt"

python3 ci/gpu_check_summary.py "$OUT" "$GPU" "$SMOKE"
rm -f "$OUT/.peak"
