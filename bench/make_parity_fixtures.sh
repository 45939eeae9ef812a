#!/usr/bin/env bash
# Regenerates the fixtures of tests/parity.rs: eigenssl writes each parity cell's config, initial weights
# and augmented batches, then the PyTorch twin of the authors' code trains on them and writes what it got.
# Needs a Python with torch, torchvision and safetensors (pip install torch torchvision safetensors).
# Usage: bench/make_parity_fixtures.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
out=tests/fixtures/parity
rm -rf "$out"
cargo run --release -q --example parity_fixtures -- "$out"
"$python" bench/torch_twin.py fixtures "$out"
du -sh "$out"
