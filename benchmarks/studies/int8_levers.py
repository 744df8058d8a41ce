"""What each INT8 lever does per scale, on the on-CPU check's images (the bundled photos and textures, 168² centre
crops; never seen by drcn-export --int8, which calibrates on the --calib folders), with this machine's kernels or
those ONEDNN_MAX_CPU_ISA caps them to. Per scale and per variant of the given INT8 graph: the Y-PSNR change and the
per-pixel deviation of the 8-bit Y output from fp32 (OpenVINO, float parts f32 unless named), and ms per 282² window
(median of 5, batch 1, latency mode) beside OpenVINO fp32's.

Variants: the graph's activation ranges times 0.75 ... 2 (uniform, the lever drcn-export --int8 searches per scale);
one round of per-tensor range factors (x0.7 / x1.5 on each activation in turn, kept where the figure improves;
--per-tensor, slow); the last activation (the sum the folded output conv reads) in float; every activation in float
(weights int8); the graph's float parts in bf16 where the CPU has it; and, for comparison, the fp32 graph in bf16.
With --text the same rows on generated text (drcn.calibration.text_image: rendered subtitles-like lines, both
polarities), the content whose strokes drive the activations furthest past the calibrated ranges. Run from the
repository root:

    python benchmarks/studies/int8_levers.py weights/drcn_f64_d9_int8.onnx --scales 2,3,4 --text
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/studies/int8_levers.py weights/drcn_f64_d9_int8.onnx
"""

import argparse
import os
import time

import numpy as np
import onnx

from drcn.calibration import calibration_pairs, text_pairs
from drcn.deviation import Deviation
from drcn.export.int8_ranges import activation_quantizers, in_float, widened
from drcn.fp16 import psnr_and_outputs
from drcn.onnx_meta import int8_record
from drcn.runtime.backends import precision_check as pc
from drcn.runtime.backends.select import shipped_onnx_path

parser = argparse.ArgumentParser()
parser.add_argument("int8", help="an INT8 graph of the shipped model (drcn-export --int8)")
parser.add_argument("--scales", default="2,3,4")
parser.add_argument("--per-tensor", action="store_true", help="also search per-tensor factors (slow)")
parser.add_argument("--text", action="store_true", help="also on generated text images")
args = parser.parse_args()
fp32 = onnx.load(str(shipped_onnx_path()))
base = onnx.load(args.int8)
record = int8_record(base)
# Undo the factor drcn-export chose for this graph's scales: the variants start from NNCF's own ranges.
nncf = widened(base, 1.0 / float(record.get("range_factor", 1.0)))
names = [q.input[0] for q in activation_quantizers(nncf)]
has_bf16 = "BF16" in pc.cpu_capabilities()
window = np.random.default_rng(0).random((1, 1, 282, 282), np.float32)
print(f"kernels: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}; graph {args.int8} (scope: {record.get('scope')}, "
      f"chosen range factor x{record.get('range_factor', 1)} for x{record.get('scales', 'all')})")


def ms(model, hint):
    run = pc._runner(model, hint)
    run(window)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run(window)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(model, hint, pairs, reference, reference_psnr, scale):
    scores, outputs = psnr_and_outputs(pc._runner(model, hint), pairs)
    found = Deviation()
    for expected, got in zip(reference, outputs):
        found.add(expected, got)
    return scores[float(scale)] - reference_psnr, found


speed = {"fp32 graph": ms(fp32, "f32"), "INT8 graph": ms(nncf, "f32"),
         "last activation in float": ms(in_float(nncf, {names[-1]}), "f32"),
         "every activation in float": ms(in_float(nncf), "f32")}
if has_bf16:
    speed["fp32 graph in bf16"] = ms(fp32, "bf16")
    speed["INT8 graph, float parts bf16"] = ms(nncf, "bf16")
print("ms per 282² window: " + "; ".join(f"{k} {v:.0f}" for k, v in speed.items()))
for scale in (int(s) for s in args.scales.split(",")):
    sets = {"check images": calibration_pairs(None, (scale,), max_side=pc.MAX_SIDE)}
    if args.text:
        sets["generated text"] = text_pairs((scale,), side=pc.MAX_SIDE)
    for where, pairs in sets.items():
        psnr, reference = psnr_and_outputs(pc._runner(fp32, "f32"), pairs)
        reference_psnr = psnr[float(scale)]
        rows = [(f"ranges x{f:g}", widened(nncf, f), "f32") for f in (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)]
        rows += [("last activation in float, ranges x1", in_float(nncf, {names[-1]}), "f32"),
                 ("every activation in float (weights int8)", in_float(nncf), "f32")]
        if has_bf16:
            rows += [(f"this graph (ranges x{record.get('range_factor', 1)}), float parts bf16", base, "bf16"),
                     ("the fp32 graph in bf16", fp32, "bf16")]
        for label, model, hint in rows:
            change, found = measure(model, hint, pairs, reference, reference_psnr, scale)
            print(f"x{scale} {where}: {label}: {change:+.4f} dB, {found.describe()}", flush=True)
    if args.per_tensor:
        pairs = sets["check images"]
        psnr, reference = psnr_and_outputs(pc._runner(fp32, "f32"), pairs)
        reference_psnr = psnr[float(scale)]
        factors = dict.fromkeys(names[:-1], 1.0)
        change, best = measure(nncf, "f32", pairs, reference, reference_psnr, scale)
        for name in names[:-1]:
            for step in (1.5, 0.7):
                trial = dict(factors, **{name: factors[name] * step})
                c, found = measure(widened(nncf, trial), "f32", pairs, reference, reference_psnr, scale)
                if (found.share_over(4), found.max) < (best.share_over(4), best.max):
                    factors, best, change = trial, found, c
                    break
        moved = {k: v for k, v in factors.items() if v != 1.0}
        print(f"x{scale} check images: per-tensor factors {moved}: {change:+.4f} dB, {best.describe()}", flush=True)
