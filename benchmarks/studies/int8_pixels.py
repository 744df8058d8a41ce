"""Where the shipped INT8 graph's worst pixels come from, on the on-CPU check's images only (the bundled
photos and textures, 168² centre crops, x2-x4; never a test set). Prints, per activation quantizer, its range against
the largest activation the fp32 network reaches there (and the share clipped); then the per-pixel deviation from
fp32 (OpenVINO, this CPU's kernels) of variants of the graph: float parts in bf16 / f32, every range widened by a
factor, only the early or the late recursions widened, the embedding output and the ensemble sum left in float.
Run from the repository root:
    python benchmarks/studies/int8_pixels.py > benchmarks/results/cpu/int8_pixels_study.txt
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from drcn.calibration import calibration_pairs
from drcn.deviation import by_scale
from drcn.export.int8_ranges import activation_quantizers, in_float, widened
from drcn.fp16 import psnr_and_outputs
from drcn.runtime.backends import precision_check as pc
from drcn.runtime.backends.select import shipped_onnx_path

FP32 = str(shipped_onnx_path())
INT8 = FP32.replace(".onnx", "_int8.onnx")
pairs = sorted(calibration_pairs(None, (2, 3, 4), max_side=pc.MAX_SIDE), key=lambda p: p[1].shape)


def without_activation_qdq(model, names=None):
    """The graph with the activation Q/DQ pairs of ``names`` (all: None) removed: those tensors stay in float."""
    return in_float(model, names)


def ranges_against_peaks():
    model = onnx.load(INT8)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    limits = {q.input[0]: float(inits[q.input[1]]) * (255 if inits[q.input[2]].dtype == np.uint8 else 127)
              for q in activation_quantizers(model)}
    probe = without_activation_qdq(onnx.load(INT8))
    for name in limits:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()][1:]
    peak, over, total = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for _, up, _ in pairs:
        for name, out in zip(names, session.run(None, {"input": (up.astype(np.float32) / 255)[None, None]})[1:]):
            peak[name] = max(peak[name], float(out.max()))
            over[name] += int((out > limits[name]).sum())
            total[name] += out.size
    print("activation ranges of the shipped INT8 graph against the fp32 network's peaks on the check images:")
    for name in names:
        print(f"  {name:10s} range {limits[name]:7.3f}  peak {peak[name]:7.3f} ({peak[name] / limits[name]:.2f}x)  "
              f"clipped {100 * over[name] / total[name]:.4f}%")
    return {name: peak[name] / limits[name] for name in names}


def report(label, model, hint):
    run = pc._runner(model, hint)
    scores, outputs = psnr_and_outputs(run, pairs)
    found = by_scale(pairs, reference, outputs)
    cells = "; ".join(f"{k} {scores[float(k[1:])] - reference_psnr[float(k[1:])]:+.4f} dB, {d.describe()}"
                      for k, d in found.items())
    print(f"{label} (float parts {hint}): {cells}")


peaks = ranges_against_peaks()
reference_psnr, reference = psnr_and_outputs(pc._runner(onnx.load(FP32), "f32"), pairs)
print("\nper-pixel deviation from fp32 on the check images (OpenVINO, this CPU's kernels):")
for hint in ("bf16", "f32"):
    report("shipped INT8 graph", onnx.load(INT8), hint)
report("activations in float (weights int8)", without_activation_qdq(onnx.load(INT8)), "f32")
for factor in (1.5, 2.0):
    report(f"every range x{factor:g}", widened(onnx.load(INT8), dict.fromkeys(peaks, factor)), "f32")
report("every range to its peak x1.05", widened(onnx.load(INT8), {k: v * 1.05 for k, v in peaks.items()}), "f32")
report("early recursions x2 (relu_2-8)", widened(onnx.load(INT8), {f"relu_{i}": 2.0 for i in (2, 4, 6, 8)}), "f32")
report("late recursions x2 (relu_10-18)", widened(onnx.load(INT8), {f"relu_{i}": 2.0 for i in range(10, 19, 2)}),
       "f32")
report("embedding output and ensemble sum in float", without_activation_qdq(onnx.load(INT8), {"relu_1", "add_297"}),
       "f32")
