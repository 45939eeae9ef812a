#!/usr/bin/env bash
# Builds eigenssl with `--features cuda` on a machine with no GPU and no system CUDA toolkit, from
# PyPI's CUDA 13.0 wheels (the set PyTorch 2.11 pins, so the libraries match the ones torch installs on
# a GPU machine) plus a link-time libcuda stub made here (each step is commented below).
#   ci/build-cuda.sh [--test] [WORK_DIR (default target/cuda-toolkit)]
# --test: then runs the test suite on the CUDA build (`cargo test --release --features cuda`) with the stub
# as libcuda.so.1: every test runs on the CPU, and those of `--device cuda` expect this build's refusal.
# Output: target/cuda/release/eigenssl, built for compute capability $CUDA_COMPUTE_CAP (default 90:
# sm_90a, i.e. H100/H200/GH200). On the GPU machine, put torch's CUDA 13 libraries on LD_LIBRARY_PATH
# (printed at the end); never copy the stub there: the real driver provides libcuda.so.1.
# No `cudnn` feature: it only routes candle's own conv2d forward to cuDNN, and eigenssl's GPU path never
# calls that op (its convolution is an unfolding and a matrix product both ways), so it would add cuDNN to
# the build and to what a GPU machine carries without changing any computation (docs/src/reproducing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=0
if [ "${1:-}" = "--test" ]; then TESTS=1; shift; fi
W=$(realpath -m "${1:-target/cuda-toolkit}")
mkdir -p "$W"

# 1. The CUDA 13.0 toolchain and libraries from PyPI.
if [ ! -x "$W/venv/bin/pip" ]; then python3 -m venv "$W/venv"; fi
"$W/venv/bin/pip" install -q --no-cache-dir 'cuda-toolkit[nvcc,crt,nvvm,cccl,cudart,cublas,curand,nvrtc]==13.0.2'
CU="$(echo "$W"/venv/lib/python3*/site-packages/nvidia/cu13)"
"$CU/bin/nvcc" --version | tail -2

# 2. Link overlay: unversioned dev symlinks (the wheels ship only lib*.so.N) and a libcuda stub whose every
#    driver entry point returns CUDA_ERROR_STUB_LIBRARY (34); the symbol list comes from cudarc's source.
L="$W/cuda-link"
mkdir -p "$L/lib/stubs"
for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  ln -sf "$CU/lib/$l" "$L/lib/${l%%.so*}.so"
done
cargo fetch -q
CUDARC_SRC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | sort -V | tail -1)"
{ echo '/* link-time stub for libcuda.so.1: every driver entry point returns CUDA_ERROR_STUB_LIBRARY (34) */'
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$CUDARC_SRC/src/driver/sys/mod.rs" | awk '{print $4}' | sort -u |
    while read -r s; do echo "int $s(void) { return 34; }"; done
} > "$L/libcuda_stub.c"
gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o "$L/lib/stubs/libcuda.so" "$L/libcuda_stub.c"
ln -sf libcuda.so "$L/lib/stubs/libcuda.so.1"

# 3. Build (into its own target dir, so the CPU build is untouched).
export CUDA_HOME="$CU" CUDA_ROOT="$L" PATH="$CU/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDARC_CUDA_VERSION=13000 CUDAFORGE_THREADS="$(nproc)"
cargo build --release --features cuda --target-dir target/cuda
BIN=target/cuda/release/eigenssl
readelf -d "$BIN" | grep NEEDED

# 4. Smoke test here, where there is no driver: with the stub as libcuda.so.1 the binary starts, runs the
#    CPU engines and reports the missing GPU as an error (exit 2) instead of failing to load.
LD_LIBRARY_PATH="$CU/lib:$L/lib/stubs" "$BIN" list > /dev/null
if nvidia-smi > /dev/null 2>&1; then
  echo "GPU found: run with LD_LIBRARY_PATH=$CU/lib $BIN ..."
else
  set +e
  LD_LIBRARY_PATH="$CU/lib:$L/lib/stubs" "$BIN" reproduce table1 --profile smoke --device cuda --out "$W/smoke" 2>&1 | tail -1
  echo "(expected here: --device cuda not available; exit code ${PIPESTATUS[0]})"
fi
echo "built $BIN; on a GPU machine with torch 2.11+cu130:"
echo "  export LD_LIBRARY_PATH=\"\$(python -c 'import os,nvidia; print(os.path.join(list(nvidia.__path__)[0],\"cu13\",\"lib\"))')\""
if [ "$TESTS" = 1 ]; then
  LD_LIBRARY_PATH="$CU/lib:$L/lib/stubs" cargo test --release --features cuda --target-dir target/cuda
fi
