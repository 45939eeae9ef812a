#!/usr/bin/env bash
# Fuzzes the spec parser, every dataset loader and the stored-state readers (run records, checkpoints)
# for a bounded time each: ci/fuzz.sh [SECONDS per target, default 60].
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer. CI's default is none: the code these targets reach is safe
# Rust but for dependencies' unsafe blocks, panics and libFuzzer's coverage guidance work without one, and
# the fuzz build is one of CI's slowest steps (the guide, docs/src/gate.md: 5.0 min without, 6.6 min with
# AddressSanitizer on a 2-core AVX-512 machine). FUZZ_SANITIZER=address for a deeper run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cd fuzz
cargo fuzz build -O --sanitizer "$sanitizer"
# Seeds: the real specs, so the parser fuzzer starts from valid documents.
mkdir -p corpus/spec
cp ../experiments/*.yaml corpus/spec/
log=$(mktemp)
for target in spec dataset_files stored_state; do
  echo "== fuzz $target for ${secs}s"
  rc=0
  cargo fuzz run -O --sanitizer "$sanitizer" "$target" -- -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 > "$log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    # libFuzzer found a crash: show it; the input is kept under fuzz/artifacts/$target/.
    tail -40 "$log"
    exit "$rc"
  fi
done
