#!/usr/bin/env bash
# drcn-run's frames/s on 8 frames of 320x180 (x2 -> 640x360), interleaved, twice: the default (auto) path, ONNX
# Runtime fp32, the default with one request at a time (--mode latency), and the device path (the INT8 frame
# graph). Prints drcn-run's summary lines.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/frames" <<'PY'
import sys
from drcn.benchmarks.pipeline_bench import make_frames
make_frames(__import__("pathlib").Path(sys.argv[1]), 8, 320, 180)
PY
for round in 1 2; do
  for setting in "default:" "onnxruntime:--backend onnxruntime" "latency-mode:--mode latency" \
                 "device-path:--path device"; do
    name=${setting%%:*}; options=${setting#*:}
    line=$(drcn-run "$work/frames" -o "$work/out_$name" --overwrite --tile 256 $options | grep "frame(s) in")
    echo "round $round $name: $line"
  done
done
