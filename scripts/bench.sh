#!/usr/bin/env bash
# Sets up (scripts/setup.sh: .venv with ONNX Runtime, scipy and numpy, and
# the release build) and runs the benchmark suite, advx against the scipy
# reference included, then the attack on colour images (own-model's CNN and
# the ResNet-18 fixture). Options go to `advx bench` instead, e.g.
#   bash scripts/bench.sh --only lbfgs --models fc100-100-10 --images 100
# Results: bench/results.yaml and the table in bench/results.txt (README.md,
# section Benchmarks, says how to read them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
advx="${CARGO_TARGET_DIR:-target}/release/advx"
[ $# -gt 0 ] && exec "$advx" bench "$@"
"$advx" bench
# The attack on colour images: own-model's residual CNN (its normalisation
# declared) and the ResNet-18 fixture, on the PNG folder own-model reads.
bash scripts/own-data.sh
own=(--only lbfgs --data images:notebooks/fashion-rgb)
"$advx" bench "${own[@]}" --models-dir models/own --models fashion_resnet --images 200 \
  --mean 0.17,0.169,0.169 --std 0.273,0.272,0.272 --reference fashion_resnet --reference-images 20 \
  --out bench/results-own.yaml
"$advx" bench "${own[@]}" --models-dir models/fixtures --models resnet18 --images 50 \
  --reference resnet18 --reference-images 10 --out bench/results-resnet18.yaml
