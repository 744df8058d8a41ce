#!/usr/bin/env bash
# Regenerates every table and plot in benchmarks/results/cpu/ on a CPU machine (run from the repository root with drcn
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
# 5. Whole-frame graph vs the host path (issue 18): differing pixels and Y-PSNR per scale, Set5 + Set14.
drcn-bench framegraph $DATA/Set5 $DATA/Set14 --json $OUT/framegraph.json --md $OUT/framegraph.md
# 6. The host's work per 1080p frame (no network), both paths; both paths through the pipeline on OpenVINO.
drcn-bench latency --host 1920x1080 --repeat 5 --json $OUT/host.json --md $OUT/host.md
drcn-bench paths --backend openvino --size 1280x720 --frames 4 --json $OUT/paths.json --md $OUT/paths.md
# 7. The shipped INT8 graph (calibrated on training images only), and the CPU paths' quality on the test sets.
drcn-export --onnx weights/drcn_f64_d9_int8.onnx --int8 --calib $DATA/T91 $DATA/BSD200
for p in int8 bf16; do
  drcn-bench quality $DATA/Set5 $DATA/Set14 --scale 2,3,4 --method openvino --precision $p \
    --json $OUT/openvino_$p.json --md $OUT/openvino_$p.md
done
# 8. The CPU paths in one run, with the --depth knob (INT8 graphs of the depth variants quantized on first use).
drcn-bench latency --method openvino,onnxruntime --precision fp32,bf16,int8 --depth 9,6,3 --repeat 5 \
  --quality $DATA/Set5 --json $OUT/cpu_paths.json --md $OUT/cpu_paths.md
# 9. drcn-run on 8 frames of 320x180 (x2): the default path vs ONNX Runtime fp32, throughput vs latency mode, and
#    the device path; then equal tiles against fixed windows of tile + 2 halo in one run.
benchmarks/studies/frames_per_second.sh > $OUT/frames_per_second.txt
drcn-bench latency --method auto --overhead 640x360 --frames 1920x1080 --frame-repeat 3 --repeat 5 \
  --json $OUT/tiling.json --md $OUT/tiling.md
# 10. One request's parallel efficiency and latency vs throughput mode on the backend alone.
python3 benchmarks/studies/in_flight.py > $OUT/in_flight.txt
# 11. drcn-serve under load (issue 24): 1, 4 and 16 clients on 256x256 images beside drcn-run and a warm
#     drcn.upscale; the 2-minute soak at 16 clients; windows batched across requests or not, on small images.
drcn-bench serve --seconds 20 --json $OUT/serve.json --md $OUT/serve.md
drcn-bench serve --clients 16 --seconds 120 --json $OUT/serve_soak.json --md $OUT/serve_soak.md
for b in 1 8; do
  drcn-bench serve --clients 16 --seconds 20 --size 64x64 --max-batch $b --json $OUT/serve_batch$b.json \
    --md $OUT/serve_batch$b.md
done
# 12. Working memory per output pixel of the host and device paths (what drcn.limits budgets).
python3 benchmarks/studies/host_memory.py > $OUT/host_memory.txt
# 13. The geometric self-ensemble: Set5 and Set14 x2-x4 with 1, 2, 4, 8 transforms, fp32 and auto, and ms per window.
bash benchmarks/studies/ensemble.sh $DATA
# 14. Trust per pixel (issue 33): each precision's worst pixels against fp32 on Set5 + Set14, AVX2-capped INT8, the
#     fp16-stored graph, and the panning clip (pixels_*.md, temporal.md).
bash benchmarks/studies/per_pixel.sh $DATA
# 15. INT8 per scale: frames/s of the defaults against OpenVINO and ONNX Runtime fp32 with this CPU's kernels and
#     capped at AVX512_CORE_VNNI and AVX2, Set5 + Set14 per cell with auto; and what each INT8 lever does per scale.
bash benchmarks/studies/int8_per_scale.sh $DATA > $OUT/int8_per_scale.txt
python3 benchmarks/studies/int8_levers.py weights/drcn_f64_d9_int8.onnx --text > $OUT/int8_levers.txt
