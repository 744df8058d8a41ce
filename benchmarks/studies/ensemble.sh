#!/usr/bin/env bash
# The self-ensemble table of the model card: Set5 and Set14 x2-x4 with 1/2/4/8 transforms, OpenVINO fp32 and the
# precision drcn-run picks on this CPU (auto), tiled as drcn-run tiles (256); then ms per 282² window (256 + 2x13
# halo, batch 4) for each. Run from the project root:
#     bash benchmarks/studies/ensemble.sh ../shared/datasets
set -euo pipefail
data=${1:-../shared/datasets}
out=benchmarks/results/cpu
for precision in fp32 auto; do
    drcn-bench quality "$data/Set5" "$data/Set14" --scale 2,3,4 --method openvino --precision "$precision" \
        --ensemble 1,2,4,8 --tile 256 --json "$out/ensemble_quality_$precision.json" \
        --md "$out/ensemble_quality_$precision.md"
done
drcn-bench latency --method openvino --precision fp32,auto --ensemble 1,2,4,8 --tile 256 --repeat 5 \
    --json "$out/ensemble_latency.json" --md "$out/ensemble_latency.md"
