#!/usr/bin/env bash
# Writes notebooks/fashion-rgb, the PNG folder notebooks/own-model.advx reads:
# 1000 Fashion-MNIST test images, coloured, at 3x32x32 (models/own/colour.py).
# Installs Debian's dataset-fashion-mnist and Pillow into .venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[own-data]\033[0m %s\n' "$*" >&2; }
out=notebooks/fashion-rgb
[ -f "$out/labels.csv" ] && exit 0
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  say "installing dataset-fashion-mnist"
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null
fi
[ -x .venv/bin/python ] || bash scripts/setup.sh --no-build
.venv/bin/python -c "import PIL" 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check pillow==13.0.0
rm -rf "$out.part"
say "writing $out"
.venv/bin/python models/own/colour.py "$out.part" --split test --count 1000
rm -rf "$out" && mv "$out.part" "$out"
