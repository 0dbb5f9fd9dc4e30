#!/usr/bin/env bash
# The main job: set up, then run notebooks/quickstart.advx: the paper's MNIST
# models evaluated on the MNIST test set, and a grid of test digits with
# predictions. Outputs (figures, results.yaml, report.html, a notebook) go
# to runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
target/release/advx run notebooks/quickstart.advx --out runs/quickstart --to ipynb
