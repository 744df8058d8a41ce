#!/usr/bin/env bash
# Issue 33: what the per-pixel bound costs. drcn-run on 8 frames of 320x180 (x2) with the defaults (auto: what the
# on-CPU check passes), with the INT8 graph asked for (--precision int8, the earlier default), bf16, and ONNX Runtime
# fp32, interleaved, twice; on this CPU's kernels and with oneDNN's kernels capped at AVX2, in one run. Prints
# drcn-run's backend line and summary line per run. Run from the repository root:
#   bash benchmarks/studies/auto_cost.sh > benchmarks/results/cpu/auto_cost.txt
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys
from pathlib import Path
from drcn.benchmarks.pipeline_bench import make_frames
make_frames(Path(sys.argv[1]) / "frames", 8, 320, 180)
PY
run() {  # label, options...
  local name=$1; shift
  out=$(drcn-run "$work/frames" -o "$work/out_$name" --overwrite --tile 256 "$@")
  echo "$kernels round $round $name: $(echo "$out" | grep "frame(s) in")"
  echo "    $(echo "$out" | grep -m1 -o "OpenVINO.*\|ONNX Runtime.*" | cut -c1-400)"
}
for kernels in native AVX2; do
  if [ "$kernels" = AVX2 ]; then export ONEDNN_MAX_CPU_ISA=AVX2; fi
  for round in 1 2; do
    run default
    run int8 --backend openvino --precision int8
    if [ "$kernels" = native ]; then run bf16 --backend openvino --precision bf16; fi
    run onnxruntime --backend onnxruntime
  done
done
