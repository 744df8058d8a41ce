#!/usr/bin/env bash
# Issue 33: how far each precision's 8-bit output is from fp32's at its worst pixel, beside the Y-PSNR change, on
# Set5 and Set14 at x2-x4 (drcn-bench quality against the PyTorch fp32 reference of the same model), on this CPU's
# kernels and with oneDNN's kernels capped at AVX2; the fp16-stored graph on ONNX Runtime; and the panning clip.
# Run from the repository root:  bash benchmarks/studies/per_pixel.sh ../shared/datasets
set -euo pipefail
DATA=${1:-${DRCN_DATASETS:-../shared/datasets}}
OUT=benchmarks/results/cpu
for p in auto fp32 int8 int8/f32 bf16; do
  name=${p//\//_}
  drcn-bench quality "$DATA/Set5" "$DATA/Set14" --scale 2,3,4 --method openvino --precision "$p" \
    --json "$OUT/pixels_$name.json" --md "$OUT/pixels_$name.md"
done
ONEDNN_MAX_CPU_ISA=AVX2 drcn-bench quality "$DATA/Set5" "$DATA/Set14" --scale 2,3,4 --method openvino \
  --precision int8 --json "$OUT/pixels_int8_avx2.json" --md "$OUT/pixels_int8_avx2.md"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
drcn-export --onnx "$work/fp16.onnx" --fp16
drcn-bench quality "$DATA/Set5" "$DATA/Set14" --scale 2,3,4 --method onnxruntime --onnx "$work/fp16.onnx" \
  --json "$OUT/pixels_fp16_stored.json" --md "$OUT/pixels_fp16_stored.md"
drcn-bench temporal --precision fp32,int8,int8/f32,bf16 --json "$OUT/temporal.json" --md "$OUT/temporal.md"
