#!/usr/bin/env bash
# Runs every notebook in notebooks/ headlessly in Jupyter, with advx's own
# kernel or (own-model.ipynb) the evcxr Rust kernel, then checks each against
# `advx run` of the same cells (tests/notebooks/check.py). Sets up what is
# missing first: the Jupyter client in .venv (pinned), evcxr_jupyter (cargo
# install, about 7 minutes on 2 cores, once) and its kernelspec "rust" in
# .venv/share/jupyter; the kernelspec "advx" of the binary under test goes
# to $TARGET/notebooks/jupyter, ahead on JUPYTER_PATH.
#
#   bash scripts/notebooks.sh                 # run and check every notebook
#   bash scripts/notebooks.sh notebooks/quickstart.ipynb
#   bash scripts/notebooks.sh --update        # ... and write the outputs back to notebooks/
#   bash scripts/notebooks.sh --setup         # only install and prepare the build folder
#
# evcxr compiles advx into every kernel. Here it builds in $TARGET/evcxr/build
# (EVCXR_TMPDIR; TARGET is CARGO_TARGET_DIR or target), kept between runs and
# shared by the notebooks, so advx compiles once; $TARGET/evcxr/.cargo sets
# the build's profile. Executed notebooks and the figures decoded from them
# go to $TARGET/notebooks/. ADVX_BIN: the advx binary to compare with
# [default: the debug build, which `cargo test` has already made].
set -euo pipefail
cd "$(dirname "$0")/.."

EVCXR_VERSION=0.22.0
PYTHON_PACKAGES="nbclient==0.11.0 jupyter-client==8.10.0 pyyaml==6.0.3 pillow==13.0.0"
# The first cell compiles advx inside the kernel: minutes on a cold build folder.
CELL_TIMEOUT=1800

setup_only=0 update=0 notebooks=()
for arg in "$@"; do
  case "$arg" in
    --setup) setup_only=1 ;;
    --update) update=1 ;;
    -*) echo "notebooks.sh: unknown option $arg" >&2; exit 2 ;;
    *) notebooks+=("$arg") ;;
  esac
done
say() { printf '\033[1m[notebooks]\033[0m %s\n' "$*" >&2; }

[ -x .venv/bin/python ] || bash scripts/setup.sh --no-build
if ! .venv/bin/python - $PYTHON_PACKAGES <<'PY' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(0 if all(m.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  say "installing $PYTHON_PACKAGES into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check $PYTHON_PACKAGES
fi

# own-model's images: coloured Fashion-MNIST as a PNG folder (models/own/colour.py).
bash scripts/own-data.sh
# spectral's models: torchvision's AlexNet, VGG-11, ResNet-18 and MobileNetV2
# at full size with seeded random weights (models/zoo/make.py, 840 MB, once).
.venv/bin/python models/zoo/make.py

# evcxr_jupyter has no --version: cargo's list of installed packages says which one it is.
evcxr=${CARGO_HOME:-$HOME/.cargo}/bin/evcxr_jupyter
if ! { [ -x "$evcxr" ] && cargo install --list | grep -qxF "evcxr_jupyter v$EVCXR_VERSION:"; }; then
  say "installing evcxr_jupyter $EVCXR_VERSION (cargo install: about 7 minutes on 2 cores)"
  cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --quiet
fi
# The kernelspec goes where .venv's jupyter looks (sys.prefix), not into the
# user's folders; JUPYTER_PATH below puts it first.
kernels=$PWD/.venv/share/jupyter
if ! grep -qF "\"$evcxr\"" "$kernels/kernels/rust/kernel.json" 2>/dev/null; then
  say "registering the kernel \"rust\" in $kernels"
  JUPYTER_PATH=$kernels "$evcxr" --install >/dev/null
fi

target=${CARGO_TARGET_DIR:-target}
target=$(mkdir -p "$target" && cd "$target" && pwd)
export EVCXR_TMPDIR=${EVCXR_TMPDIR:-$target/evcxr/build}
cargo_config=$(dirname "$EVCXR_TMPDIR")/.cargo
mkdir -p "$EVCXR_TMPDIR" "$cargo_config"
# evcxr's crate sets one opt-level for everything (2): compiling it all that
# way took 11.5 minutes on a busy 2-core machine, this profile 7 (3.5 when
# the machine was quiet). advx, where the numerical code is (ndarray and
# nalgebra are generic, so they are compiled into it), the matrix products
# under the spectral bounds (matrixmultiply), the SHA-256 of models of
# hundreds of MB, and the crates that encode PNGs and draw text stay
# optimised; the rest is glue around ONNX Runtime. Cargo reads this file
# from the build folder's parent.
cat >"$cargo_config/config.toml" <<'TOML'
# Written by scripts/notebooks.sh: the profile of evcxr's builds beside it.
[profile.dev.package."*"]
opt-level = 0
[profile.dev.package.advx]
opt-level = 2
[profile.dev.package.miniz_oxide]
opt-level = 2
[profile.dev.package.matrixmultiply]
opt-level = 2
[profile.dev.package.sha2]
opt-level = 2
[profile.dev.package.adler2]
opt-level = 2
[profile.dev.package.crc32fast]
opt-level = 2
[profile.dev.package.fdeflate]
opt-level = 2
[profile.dev.package.png]
opt-level = 2
[profile.dev.package.ttf-parser]
opt-level = 2
[profile.dev.package.ab_glyph]
opt-level = 2
[profile.dev.package.ab_glyph_rasterizer]
opt-level = 2
TOML
# `:dep advx = { path = ".." }` resolves advx's dependencies anew in evcxr's
# crate: start it from advx's lock file, not from whatever crates.io has newest.
cp Cargo.lock "$EVCXR_TMPDIR/Cargo.lock"
[ "$setup_only" = 1 ] && exit 0

source scripts/env.sh
advx=${ADVX_BIN:-}
if [ -z "$advx" ]; then
  cargo build --locked --quiet --bin advx
  advx=$target/debug/advx
fi
export ADVX_THREADS=${ADVX_THREADS:-2}
# The advx kernel of the binary under test, not whichever `setup.sh --jupyter` registered.
"$advx" kernel install --prefix "$target/notebooks/jupyter" >/dev/null
export JUPYTER_PATH=$target/notebooks/jupyter/share/jupyter:$kernels
# evcxr's cargo: one cold build, where incremental compilation would only
# add work (and disk).
export CARGO_INCREMENTAL=0
# No user init.evcxr or prelude.rs (a `:timing` there would add outputs).
export EVCXR_CONFIG_DIR=$target/notebooks/evcxr-config
mkdir -p "$EVCXR_CONFIG_DIR"

[ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/*.ipynb)
out=$target/notebooks
rm -rf "$out/executed" "$out/figures" "$out/check"
mkdir -p "$out/executed"
.venv/bin/python tests/notebooks/check.py --self-test
executed=()
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb")
  say "running $nb"
  start=$SECONDS
  # The kernel starts in the notebook's folder: paths in cells are relative to notebooks/.
  if ! .venv/bin/jupyter execute --timeout=$CELL_TIMEOUT --startup_timeout=300 \
    --output="$out/executed/$name" "$nb" >"$out/$name.log" 2>&1; then
    cat "$out/$name.log" >&2
    say "$nb failed (log: $out/$name.log)"
    exit 1
  fi
  say "$nb ran in $((SECONDS - start)) s"
  executed+=("$out/executed/$name")
done
update_to=()
[ "$update" = 1 ] && update_to=(--update notebooks)
.venv/bin/python tests/notebooks/check.py --advx "$advx" --work "$out/check" --figures "$out/figures" \
  --committed notebooks ${update_to[@]+"${update_to[@]}"} "${executed[@]}"
say "figures from the notebooks: $out/figures"
