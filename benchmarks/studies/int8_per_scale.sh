#!/usr/bin/env bash
# INT8 per scale, on the CPUs most machines have: for this CPU's own kernels and with oneDNN's kernels capped at
# AVX512_CORE_VNNI (a VNNI CPU without bf16) and at AVX2 (no VNNI, no bf16), in one run:
#  1. drcn-run on 8 frames of 320x180 at x2 (-> 640x360): the defaults (auto), OpenVINO fp32 and ONNX Runtime fp32,
#     interleaved, two rounds; the backend line says what auto took and why. ONNX Runtime ignores the cap (it keeps
#     the CPU's own kernels), so under a cap its ratio is a lower bound for a CPU that really lacks them.
#  2. drcn-bench quality on Set5 and Set14 at x2, x3 and x4 with auto (each scale judged with its own INT8 graph):
#     Y-PSNR against PyTorch fp32 and the per-pixel deviation of every cell.
# Run from the repository root:
#   bash benchmarks/studies/int8_per_scale.sh ../shared/datasets > benchmarks/results/cpu/int8_per_scale.txt
set -euo pipefail
DATA=${1:-${DRCN_DATASETS:-../shared/datasets}}
OUT=benchmarks/results/cpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys
from pathlib import Path
from drcn.benchmarks.pipeline_bench import make_frames
make_frames(Path(sys.argv[1]) / "frames", 8, 320, 180)
PY
python3 - <<'PY'
import json
from drcn.benchmarks.environment import environment
from drcn.cpu import cpu_flags
env = environment()
isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in cpu_flags()]
print(f"machine: {env['cpu']}, {env['cpu_count']} cores, flags {' '.join(isa)}, {env['date']}")
PY
run() {  # label, options...
  local name=$1; shift
  out=$(drcn-run "$work/frames" -o "$work/out_$name" --overwrite --tile 256 "$@" 2>&1)
  echo "$kernels round $round $name: $(echo "$out" | grep "frame(s) in")"
  echo "    $(echo "$out" | grep -m1 -o "OpenVINO.*\|ONNX Runtime.*" | cut -c1-420)"
}
for kernels in native AVX512_CORE_VNNI AVX2; do
  if [ "$kernels" = native ]; then unset ONEDNN_MAX_CPU_ISA; else export ONEDNN_MAX_CPU_ISA=$kernels; fi
  for round in 1 2; do
    run default
    run openvino-fp32 --backend openvino --precision fp32
    run onnxruntime --backend onnxruntime
  done
  name=$(echo "$kernels" | tr 'A-Z' 'a-z')
  drcn-bench quality "$DATA/Set5" "$DATA/Set14" --scale 2,3,4 --method openvino --precision auto \
    --json "$OUT/int8_per_scale_$name.json" --md "$OUT/int8_per_scale_$name.md" | tail -n 30
done
