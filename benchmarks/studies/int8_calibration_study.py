"""Does a better post-training calibration recipe widen the INT8 margin? Each variant quantizes the
shipped fp32 graph with the shipped scope (first conv, Add/Mul in float) and is scored where drcn-export --int8
scores (T91 + BSD200, 80 images, crops up to 384², OpenVINO, float parts f32): Y-PSNR change per scale.
(Full bias correction is not a variant: NNCF fails on the tied recursive weights, "Duplicate definition-site".)
Run from the project root:
    python benchmarks/studies/int8_calibration_study.py ../shared/datasets > benchmarks/results/cpu/int8_calibration_study.txt
"""

import logging
import sys
import time

import nncf
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
from nncf.quantization.range_estimator import RangeEstimatorParametersSet

from drcn.fp16 import psnr_by_scale
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import read_onnx_info
from drcn.export import int8 as recipe
from drcn.runtime.backends.select import shipped_onnx_path

VARIANTS = [("the shipped recipe: 30 windows of 96², histogram ranges", {}),
            ("120 windows of 96²", {"windows": 120}),
            ("min/max ranges", {"estimator": "MINMAX"}),
            ("120 windows of 128²", {"windows": 120, "side": 128}),
            ("the last conv in float too", {"last": True})]

logging.getLogger("nncf").setLevel(logging.ERROR)
root = sys.argv[1]
fp32 = shipped_onnx_path()
model = load_onnx(fp32)
pairs = recipe.study_pairs([f"{root}/T91", f"{root}/BSD200"], read_onnx_info(fp32).config.scales)
reference = psnr_by_scale(recipe.runner(model, "fp32"), pairs)
first, last = recipe.edge_convolutions(model)
for label, v in VARIANTS:
    start = time.perf_counter()
    windows = recipe.calibration_windows(pairs, v.get("windows", recipe.WINDOWS), v.get("side", recipe.WINDOW))
    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, v.get("estimator", "HISTOGRAM")))
    scope = nncf.IgnoredScope(names=[first, last] if v.get("last") else [first], types=["Add", "Mul"])
    quantized = nncf.quantize(model, nncf.Dataset(windows, lambda x: {"input": x}),
                              preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(windows),
                              ignored_scope=scope, target_device=nncf.TargetDevice.ANY, advanced_parameters=advanced)
    scores = psnr_by_scale(recipe.runner(quantized, "fp32"), pairs)
    change = {f"x{s:g}": scores[s] - reference[s] for s in reference}
    print(f"{label}: " + ", ".join(f"{k} {c:+.4f}" for k, c in change.items())
          + f" dB; worst {min(change.values()):+.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
