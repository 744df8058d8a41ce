#!/usr/bin/env bash
# The test sets confirm what int8_qat.py chose on calibration images: Set5 and Set14 x2-x4 through OpenVINO with a
# fine-tuned INT8 graph (drcn-qat) as the shipped fp32 graph's sibling, against the PyTorch fp32 reference, as
# openvino_int8.md does for the shipped INT8 graph. Run from the project root:
#   bash benchmarks/studies/int8_qat.sh runs/qat/drcn_f64_d9_int8.onnx ../shared/datasets [OUT.md]
set -euo pipefail
candidate=$1 data=$2 md=${3:-benchmarks/results/cpu/openvino_int8_qat.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fp32=$(python -c "from drcn.runtime.backends.select import shipped_onnx_path; print(shipped_onnx_path())")
cp "$fp32" "$work/$(basename "$fp32")"
cp "$candidate" "$work/$(basename "$fp32" .onnx)_int8.onnx"
drcn-bench quality "$data/Set5" "$data/Set14" --scale 2,3,4 --method openvino,torch --precision int8 \
  --onnx "$work/$(basename "$fp32")" --md "$md" --json "${md%.md}.json"
