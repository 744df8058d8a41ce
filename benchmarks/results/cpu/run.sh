#!/usr/bin/env bash
# Regenerates every table and plot in this folder on a CPU machine (run from the repository root with drcn
# installed; datasets from $DRCN_DATASETS or ../shared/datasets). About 35 minutes on the 2-core machine the
# results came from. Run it on a quiet machine: the timings are the last step.
set -euo pipefail
DATA=${DRCN_DATASETS:-../shared/datasets}
OUT=benchmarks/results/cpu
# 1. The paper's Bicubic column.
drcn-bench quality $DATA/Set5 $DATA/Set14 --scale 2,3,4 --method bicubic --json $OUT/bicubic.json --md $OUT/bicubic.md
# 2. The shipped model's row, PyTorch reference and ONNX Runtime (difference from the reference in dB).
drcn-bench quality $DATA/Set5 $DATA/Set14 --scale 2,3,4 --method torch,onnxruntime --json $OUT/shipped.json --md $OUT/shipped.md
# 3. Recursion versus performance: --depth d = 1..D, refit on T91 patches, PSNR on Set5 x2, latency per 256 tile.
drcn-bench sweep $DATA/Set5 --scale 2 --tile 256 --calib $DATA/T91 --json $OUT/recursion.json --plot $OUT/recursion.png
# 4. Latency of the backends, in one run (OpenVINO auto picks bf16 only where the CPU has it).
drcn-bench latency --method openvino,onnxruntime,torch --precision auto,fp32 --tile 256 --batch 4 --repeat 5 \
  --frames 1280x720,1920x1080 --frame-repeat 1 --unfolded --quality $DATA/Set5 \
  --json $OUT/latency.json --md $OUT/latency.md --plot $OUT/psnr_vs_latency.png
