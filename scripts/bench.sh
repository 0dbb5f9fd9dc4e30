#!/usr/bin/env bash
# Sets up (scripts/setup.sh: .venv with ONNX Runtime, scipy and numpy, and
# the release build) and runs the benchmark suite, advx against the scipy
# reference included. Options go to `advx bench`, e.g.
#   bash scripts/bench.sh --only lbfgs --models fc100-100-10 --images 100
# Results: bench/results.yaml and the table in bench/results.txt (README.md,
# section Benchmarks, says how to read them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec "${CARGO_TARGET_DIR:-target}/release/advx" bench "$@"
