#!/usr/bin/env bash
# GPU runbook: latency and quality of every backend that works on this GPU machine, into one folder.
#   benchmarks/gpu_runbook.sh [OUT_DIR] [DATASETS_DIR]      (from the repository root; ~5-7 minutes)
# Smaller settings for a smoke test: TILES=32 FRAMES=64x48 REPEAT=2 PIPELINE=2 PATHS_SIZE=128x96 PATHS_FRAMES=2 \
#   benchmarks/gpu_runbook.sh /tmp/x
# Installs nothing it cannot have: drcn itself offline (no dependencies) if it is not importable yet.
# PyTorch fp32 and fp16 always; TensorRT when a flavour that targets this GPU imports (standard `tensorrt`, or
# `tensorrt_rtx` on RTX-class GPUs); ONNX Runtime when it has the CUDA provider.
set -euo pipefail
OUT=${1:-benchmarks/results/gpu}
DATA=${2:-${DRCN_DATASETS:-../shared/datasets}}
PY=${PYTHON:-python3}
TILES=${TILES:-256,512}; FRAMES=${FRAMES:-1280x720,1920x1080}; REPEAT=${REPEAT:-20}; PIPELINE=${PIPELINE:-16}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
$PY -c "import drcn.benchmarks.cli" 2>/dev/null || $PY -m pip install -q --no-deps --no-build-isolation --no-index -e .

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1 || true
methods=torch
$PY -c "from drcn.runtime.tensorrt.cuda import visible_gpu; from drcn.runtime.tensorrt.build import resolve_flavour, import_flavour as i; import sys
g = visible_gpu(); f = resolve_flavour('auto', g); i(f)
from drcn.runtime.tensorrt.flavour import rtx_runs_on
sys.exit(g is None or (f.name == 'rtx' and not rtx_runs_on(g.compute_capability)))" 2>/dev/null && methods="$methods,tensorrt"
$PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" \
  2>/dev/null && methods="$methods,onnxruntime"
echo "backends: $methods" | tee "$OUT/backends.txt"

quality_flag=()
[ -d "$DATA/Set5" ] && quality_flag=(--quality "$DATA/Set5")
timeout 300 $PY -m drcn.benchmarks.cli latency --method "$methods" --precision fp32,fp16 --tile "$TILES" \
  --batch 8 --repeat "$REPEAT" --warmup 3 --frames "$FRAMES" --frame-repeat 5 --pipeline "$PIPELINE" --overhead "$FRAMES" \
  "${quality_flag[@]}" --json "$OUT/latency.json" --md "$OUT/latency.md" --plot "$OUT/psnr_vs_latency.png" \
  2>&1 | tee "$OUT/latency.log"
# Quality per backend that needs no prebuilt file (TensorRT's PSNR is in latency.json, with --quality).
if [ -d "$DATA/Set5" ] && [ -d "$DATA/Set14" ]; then
  timeout 180 $PY -m drcn.benchmarks.cli quality "$DATA/Set5" "$DATA/Set14" --scale 2,3,4 \
    --method "${methods/,tensorrt/}" --json "$OUT/quality.json" --md "$OUT/quality.md" \
    2>&1 | tee "$OUT/quality.log"
fi
# Host path vs device path at 1080p on PyTorch CUDA (the whole frame on the GPU vs numpy colour and bicubic on
# the host), the network alone, and the host's own share of a frame.
timeout 240 $PY -m drcn.benchmarks.cli paths --backend torch --device cuda --size "${PATHS_SIZE:-1920x1080}" \
  --frames "${PATHS_FRAMES:-16}" --json "$OUT/paths.json" --md "$OUT/paths.md" 2>&1 | tee "$OUT/paths.log"
timeout 120 $PY -m drcn.benchmarks.cli latency --host "${PATHS_SIZE:-1920x1080}" --json "$OUT/host.json" \
  --md "$OUT/host.md" 2>&1 | tee "$OUT/host.log"
echo "results in $OUT"
