#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, unit and integration
# tests (gradient checks against ONNX Runtime, the committed models, the
# dataset reader and downloader), the command line end to end, and the
# notebooks run headlessly in Jupyter (scripts/notebooks.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-build
source scripts/env.sh
# Fashion-MNIST for the dataset tests, from Debian's package when we may install it.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 ||
    echo "note: could not install dataset-fashion-mnist; its tests will be skipped" >&2
fi
# The browser test of the Jupyter kernel (tests/kernel.rs): headless Chromium and its driver.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 ||
    echo "note: could not install chromium; the browser test will fail" >&2
fi
# The Slurm test (tests/slurm.rs): a one-node cluster from Debian's packages, munge for authentication.
if ! command -v slurmctld >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq slurmctld slurmd slurm-client munge) >/dev/null 2>&1 ||
    echo "note: could not install Slurm; the Slurm test will fail" >&2
fi
# ... JupyterLab (setup.sh --jupyter), Selenium and papermill for their tests, and the Kubernetes
# schema validator for the job manifests' test, in .venv.
bash scripts/setup.sh --no-build --jupyter
.venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('selenium') != '4.50.0' or m.version('papermill') != '2.7.0' or m.version('kubernetes-validate') != '1.37.0')" 2>/dev/null ||
  .venv/bin/pip install --quiet --disable-pip-version-check selenium==4.50.0 papermill==2.7.0 kubernetes-validate==1.37.0
# The optimality benchmark's peers (PyTorch, adv-lib, advertorch) for its end-to-end test.
bash scripts/peers.sh || echo "note: could not set up .venv-peers; the optimality test will be skipped" >&2
export ADVX_THREADS=${ADVX_THREADS:-2}

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
# A fresh build of the tests and notebooks takes about 6 GB in target/; a
# disk that fills half-way shows as tests failing to write, so say so first.
mkdir -p target
free_gb=$(df -Pk target | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt 10 ]; then
  echo "warning: ${free_gb} GB free beside target/; a fresh build and its tests need about 10 GB" >&2
fi
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
# No GPU here, but the CUDA build (`--features cuda`, scripts/bench-gpu.sh) must keep compiling.
cargo clippy --locked --features cuda -- -D warnings
step "cargo test"
# One closing line for the whole run (cargo prints one per test binary).
summary() { awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log; }
# Every test binary runs even after one fails, so one run shows every failure.
if ! cargo test --locked --no-fail-fast 2>&1 | tee target/test.log; then
  summary
  exit 1
fi
step "notebooks (Jupyter, evcxr kernel)"
bash scripts/notebooks.sh
summary
