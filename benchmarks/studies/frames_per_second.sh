#!/usr/bin/env bash
# drcn-run's frames/s on 8 frames of 320x180 (x2 -> 640x360), interleaved, twice: the default (auto) path, ONNX
# Runtime fp32, the default with one request at a time (--mode latency), and the device path (the INT8 frame
# graph). Then 16 small frames (128x96 -> 256x192, one window each) in throughput vs latency mode, where requests
# in flight must come from several frames. Prints drcn-run's summary lines.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys
from pathlib import Path
from drcn.benchmarks.pipeline_bench import make_frames
make_frames(Path(sys.argv[1]) / "frames", 8, 320, 180)
make_frames(Path(sys.argv[1]) / "small", 16, 128, 96)
PY
run() {  # name, folder, options...
  local name=$1 folder=$2; shift 2
  line=$(drcn-run "$work/$folder" -o "$work/out_$name" --overwrite --tile 256 "$@" | grep "frame(s) in")
  echo "round $round $name: $line"
}
for round in 1 2; do
  run default frames
  run onnxruntime frames --backend onnxruntime
  run latency-mode frames --mode latency
  run device-path frames --path device
done
for round in 1 2; do
  run small-throughput small --mode throughput
  run small-latency small --mode latency
done
