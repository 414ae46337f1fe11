#!/usr/bin/env bash
# The GPU path of issue 16, on a machine with a CUDA GPU, CUDA torch and onnxruntime-gpu
# (pip install -e '.[gpu,torch,zoo,test]'; never in CI): IG and the baselines on the GPU, the
# solve on the CPU.  Runs the CUDA tests (they skip without CUDA), then the Lite0 benchmarks
# with SMUG_DEVICE=cuda, writing their JSON under out/ (not docs/benchmarks.md).
#
#     bash bench/gpu_check.sh [PHOTOS]        # default 50 photos
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS="${1:-50}"
python - <<'PY'
import sys
import onnxruntime as ort
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (install a CUDA build of torch)")
if "CUDAExecutionProvider" not in ort.get_available_providers():
    print("gpu_check: warning: onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu); "
          "forward passes stay on the CPU", file=sys.stderr)
print("gpu_check:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| ort", ort.__version__)
PY
mkdir -p out
export SMUG_DEVICE=cuda
python -m pytest tests/encoders/test_ig_cuda.py tests/baselines/test_cuda.py -q -rs
python -m smug.bench.smug_imagenet --images "$PHOTOS" --json out/smug_imagenet_gpu.json --no-doc
python -m smug.bench.baselines --stage eval --store out/baselines_gpu.jsonl \
    --methods gradient,extremal_perturbation,sfl,sis --images 10 --slow-images 10
