#!/usr/bin/env bash
# Sets up the reference attacks of `advx bench --only optimality` (nothing
# else needs them), in .venv-peers/: Debian's CPU builds of PyTorch 1.13 and
# torchvision on OpenBLAS, with adv-lib 0.2.8 (DDN, ALMA, FMN) and advertorch 0.2.3
# (C&W-L2, LBFGSAttack). Both libraries are installed without their
# dependencies, which would pull a current torch; minnorm_torch.py supplies
# what they import that is not there (visdom, zero_gradients). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[peers]\033[0m %s\n' "$*" >&2; }

# Debian's torch calls whatever libblas.so.3 is installed; the reference
# BLAS alone makes the peers' matrix products about 8 times slower than
# OpenBLAS, which would flatter advx's speed against them.
if ! /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  say "installing Debian's python3-torch, python3-torchvision and OpenBLAS"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-torchvision python3-venv libopenblas0-pthread >/dev/null
fi
if [ ! -x .venv-peers/bin/python ]; then
  say "creating .venv-peers (with Debian's torch)"
  /usr/bin/python3 -m venv --system-site-packages .venv-peers
fi
installed() {
  .venv-peers/bin/python -c 'import importlib.metadata as m; [m.version(p) for p in ("adv-lib", "advertorch", "onnx", "onnxruntime", "scipy", "tqdm")]' 2>/dev/null
}
if ! installed; then
  say "installing adv-lib, advertorch, onnx and onnxruntime into .venv-peers"
  pip=(.venv-peers/bin/pip install --quiet --disable-pip-version-check)
  "${pip[@]}" 'numpy<2' ml_dtypes==0.5.1 tqdm==4.67.1 onnx==1.17.0 onnxruntime==1.32.0 scipy==1.17.1
  "${pip[@]}" --no-deps adv-lib==0.2.8 advertorch==0.2.3
fi
say "peers ready: .venv-peers/bin/python"
