"""FP32 graph -> FP16 graph with float32 input/output, for strongly typed TensorRT builders (TensorRT 11, RTX).

The conversion is ONNX Runtime's own float16 converter (``onnxruntime.transformers.float16``), not hand-written
graph surgery. Before the result is used, the checks ``drcn-export --fp16`` runs are repeated here with ONNX
Runtime (never torch): the FP32 graph's activation peak against the FP16 range, and the PSNR change on
calibration images (limits in :mod:`drcn.fp16`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn.calibration import calibration_pairs
from drcn.fp16 import Fp16Report, check_fp16, psnr_change
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import OnnxModelInfo, model_info
from drcn.optional import require

INSTALL = "pip install 'drcn[onnx]'"
# Node outputs whose magnitude is checked against the FP16 range: every convolution and the running ensemble.
PEAK_OPS = ("Conv", "Relu", "Add", "Mul")


@dataclasses.dataclass
class Converted:
    model_bytes: bytes      # the FP16 graph, serialised, drcn metadata kept (precision fp16)
    report: Fp16Report


def _session(model_bytes: bytes):
    ort = require("onnxruntime", "checking an FP16 conversion", INSTALL)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _runner(session):
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def activation_peak(model, inputs: list[np.ndarray]) -> float:
    """max |x| over the outputs of every node in :data:`PEAK_OPS` of the FP32 ``model`` (an onnx ModelProto)
    for (1, 1, H, W) float32 ``inputs``."""
    onnx = require("onnx", "checking an FP16 conversion", INSTALL)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = [out for node in probe.graph.node if node.op_type in PEAK_OPS for out in node.output]
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = _session(probe.SerializeToString())
    feed = session.get_inputs()[0].name
    peak = 0.0
    for x in inputs:
        for value in session.run(names, {feed: x}):
            peak = max(peak, float(np.abs(value).max()))
    return peak


def convert_to_fp16(onnx_path: Path, info: OnnxModelInfo, calib: list[str] | None = None) -> Converted:
    """The FP16 form of the FP32 graph at ``onnx_path``, checked; a one-line error when it is not safe."""
    require("onnx", "converting a graph to FP16", INSTALL)
    require("onnxruntime", "converting a graph to FP16", INSTALL)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from drcn.runtime.frame_graph import build_frame_graph, network_part

    model = load_onnx(onnx_path)
    # A frame graph's colour conversion, enlargement and rounding stay float32 (fp16 cannot hold the 0..255 grid):
    # the network is converted alone and wrapped again. (The converter's node_block_list is no help: it casts every
    # blocked node's output to fp16 and back.)
    network = model if info.kind == "y" else network_part(model)
    fp16 = convert_float_to_float16(network, keep_io_types=True)
    for prop in fp16.metadata_props:
        if prop.key == "drcn.precision":
            prop.value = "fp16"
    fp16.doc_string = f"{model.doc_string} (converted to fp16 by drcn-trt)"
    checked32, checked16 = network, fp16
    if info.kind != "y":
        fp16 = build_frame_graph(fp16, model_info(fp16, "converted graph"), info.kind, info.scale)
        fp16.doc_string = checked16.doc_string
    fp16_bytes = fp16.SerializeToString()

    pairs = calibration_pairs(calib, info.config.scales)
    inputs = [(up.astype(np.float32) / 255.0)[None, None] for _, up, _ in pairs]
    peak = activation_peak(checked32, inputs)
    psnr32, psnr16 = psnr_change(_runner(_session(checked32.SerializeToString())),
                                 _runner(_session(checked16.SerializeToString())), pairs)
    report = Fp16Report(peak, psnr32, psnr16)
    check_fp16(report, "--fp16", f"build an fp32 engine instead (drcn-trt build --onnx {onnx_path})")
    return Converted(fp16_bytes, report)
