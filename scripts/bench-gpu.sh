#!/usr/bin/env bash
# The GPU benchmark (README.md, section Benchmarks → GPU; figures in
# bench/gpu/NOTES.md): advx's lbfgs on CUDA at attack batches of 100, 1000
# and 10000 examples per ONNX Runtime call, against the PyTorch peer
# (bench/reference/lbfgs_torch.py) in the same runs where its time allows,
# then the backward part on the GPU and advx on this machine's CPU.
#
# Needs an NVIDIA GPU with CUDA 13 and a Python with PyTorch (CUDA), scipy,
# onnx and the NVIDIA CUDA 13 wheels PyTorch brings (PYTHON, default
# python3). Sets up with `scripts/setup.sh --gpu` (onnxruntime-gpu, advx
# built with --features cuda) unless ADVX names such a build (then
# ORT_DYLIB_PATH names onnxruntime-gpu's libonnxruntime.so).
#
# Results: one YAML and table per step in OUT_DIR (bench/gpu). BUDGET
# (seconds, default unlimited) skips the steps that would start after it.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${OUT_DIR:-bench/gpu}
budget=${BUDGET:-0}
say() { printf '\033[1m[bench-gpu]\033[0m %s\n' "$*" >&2; }

if [ -z "${ADVX:-}" ]; then
  bash scripts/setup.sh --gpu || exit 1
  ADVX=${CARGO_TARGET_DIR:-target}/release/advx
fi
source scripts/env.sh
if ! "$python" -c 'import torch, scipy, onnx; assert torch.cuda.is_available(), "PyTorch sees no CUDA GPU"'; then
  say "$python needs PyTorch with a CUDA GPU, scipy and onnx (the peer, and the CUDA libraries)"
  exit 1
fi
# ONNX Runtime's CUDA provider links cuBLAS, cuRAND and the CUDA runtime
# and loads cuDNN: the NVIDIA wheels beside PyTorch have them.
nvidia_libs=$("$python" - <<'PY'
import glob, os, site
found = {os.path.dirname(p) for s in site.getsitepackages() for p in glob.glob(os.path.join(s, "nvidia", "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(found)))
PY
)
export LD_LIBRARY_PATH=${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>&1 || true

started=$SECONDS failed=()
# step NAME ARGS...: `advx bench ARGS --out OUT_DIR/NAME.yaml`, unless past BUDGET.
step() {
  local name=$1; shift
  if [ "$budget" -gt 0 ] && [ $((SECONDS - started)) -ge "$budget" ]; then
    say "skipped $name: past the budget of ${budget}s"; failed+=("$name (skipped)"); return
  fi
  say "$name"
  "$ADVX" bench --out "$out/$name.yaml" "$@" || failed+=("$name")
}
peer=(--reference-script bench/reference/lbfgs_torch.py --python "$python" --reference all)
lbfgs() { # model batch images [advx bench options]
  local model=$1 batch=$2 images=$3; shift 3
  step "lbfgs-$model-b$batch" --only lbfgs --device cuda --models "$model" --attack-batch "$batch" --images "$images" "$@"
}

step backward-fc100 --only backward --device cuda --models fc100-100-10 --batches 1,256,10000 --seconds 0.5
# The peer's L-BFGS-B is scipy's, on the CPU over the whole flattened batch:
# about 0.2 µs per variable and evaluation, so 2 s per evaluation at batch
# 10000. It attacks a subset where the whole set would take many minutes.
lbfgs fc100-100-10 100 1000 "${peer[@]}" --reference-images 200
lbfgs fc100-100-10 1000 1000 "${peer[@]}"
lbfgs fc100-100-10 10000 10000 --reference none
for model in fc200-200-10 ae400-10; do
  lbfgs "$model" 1000 1000 --reference none
  lbfgs "$model" 10000 10000 --reference none
done
lbfgs cnn 1000 1000 "${peer[@]}" --reference-images 200
lbfgs cnn 10000 10000 --reference none
for model in fc200-200-10 ae400-10 cnn; do lbfgs "$model" 100 1000 --reference none; done
step backward --only backward --device cuda --batches 1,256,10000 --seconds 0.5
step lbfgs-cpu --only lbfgs --device cpu --models fc100-100-10,cnn --reference none

say "done in $((SECONDS - started)) s; tables: $out/*.txt"
if [ ${#failed[@]} -gt 0 ]; then say "not measured: ${failed[*]}"; exit 1; fi
