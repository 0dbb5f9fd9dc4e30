#!/usr/bin/env bash
# The main job: set up, then evaluate every committed MNIST model on the
# MNIST test set, beside the error recorded in its manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
target/release/advx eval models/mnist/*.onnx --data mnist:test
