#!/usr/bin/env bash
# Sets advx up on a fresh machine: ONNX Runtime (and the Python tools the
# tests use) from PyPI into .venv/, then a release build of advx.
# Idempotent: a second run only checks. Options:
#   --gpu       install onnxruntime-gpu (CUDA 13) and build with --features cuda
#   --no-build  skip the cargo build
#   --notebooks also set up Jupyter with the evcxr kernel (scripts/notebooks.sh --setup)
#   --jupyter   also install JupyterLab into .venv and register advx's own
#               kernel there (then: .venv/bin/jupyter lab, and pick "advx")
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.32.0
# onnxruntime-gpu (CUDA 13) lags the CPU wheel on PyPI.
ORT_GPU_VERSION=1.31.1
ONNX_VERSION=1.23.2
NBFORMAT_VERSION=5.11.1
JUPYTER_CLIENT_VERSION=8.10.0
PYGMENTS_VERSION=2.21.0
JUPYTERLAB_VERSION=4.6.6

gpu=0 build=1 notebooks=0 jupyter=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    --no-build) build=0 ;;
    --notebooks) notebooks=1 ;;
    --jupyter) jupyter=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null; then
  say "python3 is needed to install ONNX Runtime from PyPI"; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv 2>/dev/null || { apt-get install -y python3-venv >/dev/null && python3 -m venv .venv; }
fi
package=onnxruntime
[ "$gpu" = 1 ] && package=onnxruntime-gpu ORT_VERSION=$ORT_GPU_VERSION
# onnx: onnx.checker in the tests; nbformat: the tests validate written notebooks;
# jupyter-client: the kernel's tests talk to it as a front end does; pygments
# and grammar/python: the lexer of .advx code (nbconvert's highlighting) and
# papermill's parameters for advx notebooks.
wanted="$package==$ORT_VERSION onnx==$ONNX_VERSION nbformat==$NBFORMAT_VERSION scipy==1.16.3"
wanted="$wanted jupyter-client==$JUPYTER_CLIENT_VERSION pygments==$PYGMENTS_VERSION"
if ! .venv/bin/python - "$package" "$ORT_VERSION" $wanted <<'PY' 2>/dev/null
import sys, importlib.metadata as m
pins = [p.split("==") for p in sys.argv[3:]]
sys.exit(0 if m.version(sys.argv[1]) == sys.argv[2] and all(m.version(p) == v for p, v in pins) else 1)
PY
then
  say "installing $wanted into .venv"
  # The CPU and GPU wheels both install the package `onnxruntime`: keep one.
  other=onnxruntime-gpu; [ "$gpu" = 1 ] && other=onnxruntime
  .venv/bin/pip uninstall --quiet --yes "$other" >/dev/null 2>&1 || true
  .venv/bin/pip install --quiet --disable-pip-version-check $wanted
fi
lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)
[ -n "$lib" ] || { say "onnxruntime installed but libonnxruntime.so.* is missing"; exit 1; }
say "ONNX Runtime: $lib"

if [ "$build" = 1 ]; then
  features=()
  [ "$gpu" = 1 ] && features=(--features cuda)
  say "building advx (release)"
  cargo build --release --locked --quiet "${features[@]}"
fi
# advx-language is this checkout's own package: reinstalled whenever it changed.
language_hash=$(cat grammar/python/pyproject.toml grammar/python/advx_language/*.py | sha256sum | cut -c1-16)
if [ "$(cat .venv/advx-language.hash 2>/dev/null)" != "$language_hash" ]; then
  say "installing advx's language for Python's tools (grammar/python: Pygments, papermill) into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./grammar/python
  rm -rf grammar/python/build grammar/python/*.egg-info
  echo "$language_hash" > .venv/advx-language.hash
fi

if [ "$jupyter" = 1 ]; then
  if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('jupyterlab') != '$JUPYTERLAB_VERSION')" 2>/dev/null; then
    say "installing JupyterLab $JUPYTERLAB_VERSION into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check "jupyterlab==$JUPYTERLAB_VERSION"
  fi
  # The tests register their own binary's kernel; a --no-build setup registers none.
  if [ "$build" = 1 ]; then
    say "registering the kernel \"advx\" in .venv/share/jupyter"
    # The prelude binds the paper's models by name in every notebook; the
    # kernelspec records the data path (ADVX_DATA) env.sh sets.
    source scripts/env.sh
    VIRTUAL_ENV=$PWD/.venv target/release/advx kernel install --sys-prefix --prelude models/mnist/models.advx >/dev/null
  fi
fi
if [ "$notebooks" = 1 ]; then bash scripts/notebooks.sh --setup; fi
