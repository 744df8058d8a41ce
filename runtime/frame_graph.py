"""The whole-frame ONNX graph: the exported Y network wrapped in the pre- and post-processing of
:mod:`drcn.frame`, so that low-resolution RGB (or grey) goes in and the upscaled frame comes out.

Built with the onnx helper API around any ``drcn-export`` Y graph (fp32 or fp16, any depth), by ``drcn-export
--rgb/--gray`` and by ``drcn-run`` itself (cached under ``$DRCN_CACHE/frame-graphs``) when it runs a Y graph on
the device path. Every shape stays inferable from the input's (no crop sized from ``Shape``), which chaiNNer's and
vs-mlrt's strict shape inference need. The nodes around the network are named ``drcn_pre/...`` and
``drcn_post/...``: :func:`float32_nodes` lists them for every reduced-precision build (FP16 conversion, TensorRT,
OpenVINO bf16), because 8-bit-mantissa formats cannot even hold the 0..255 grid they compute on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import __version__, atomic, cache, frame
from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.errors import DrcnError
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import INPUT_NAME, OUTPUT_NAME, OnnxModelInfo, model_info
from drcn.optional import require
from drcn.runtime.onnx_builder import GraphBuilder, copy_nodes

PRE, POST, NET = "drcn_pre/", "drcn_post/", "drcn_net/"
# The operators a frame graph may use (fp32, fp16 and INT8 networks, with or without the self-ensemble): what ONNX
# Runtime, OpenVINO, TensorRT, OpenCV DNN, onnx2torch and ncnn (through pnnx) all convert;
# tests/runtime/test_frame_graph.py holds every graph to it.
PORTABLE_OPS = frozenset({"Conv", "Relu", "Add", "Mul", "Div", "Floor", "Clip", "Slice", "Concat", "DepthToSpace",
                          "Identity", "Cast", "QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape"})
FLOAT32_PREFIXES = (PRE, POST)
# What the network sees, exposed by ``debug_outputs=True`` so tests can compare it across precisions.
ENLARGED_Y = PRE + "y_up"


def float32_nodes(model) -> list[str]:
    """Names of the nodes that must compute in float32 whatever the network's precision."""
    return [n.name for n in model.graph.node if n.name.startswith(FLOAT32_PREFIXES)]


def build_frame_graph(y_model, info: OnnxModelInfo, kind: str, scale: int, debug_outputs: bool = False):
    """The whole-frame graph for ``y_model`` (a drcn-export Y graph, ModelProto) as a new ModelProto.

    ``input`` (N, 3, h, w) RGB (``kind`` "rgb") or (N, 1, h, w) one plane ("gray"), float32 in [0, 1] ->
    ``output`` (N, C, s·h, s·w) float32 in [0, 1]; N, h, w dynamic (h, w >= 2).
    """
    onnx = require("onnx", "building a whole-frame graph", "pip install 'drcn[onnx]'")
    from onnx import TensorProto, helper

    if info.kind != "y":
        raise DrcnError(f"a whole-frame graph is built around a Y graph; this one is already '{info.kind}'")
    if kind not in ("rgb", "gray"):
        raise DrcnError(f"whole-frame graph kind '{kind}': rgb or gray")
    if scale < 2:
        raise DrcnError(f"--scale {scale}: a whole-frame graph needs an integer scale >= 2")
    channels = 3 if kind == "rgb" else 1
    pre, post = GraphBuilder(PRE), GraphBuilder(POST)

    if kind == "rgb":
        matrix, offset = frame.ycbcr_matrix()
        ycbcr = pre.round_half_up(pre.clip(pre.conv1x1(INPUT_NAME, matrix, offset, "rgb2ycbcr"), 0.0, 255.0))
        grid = ycbcr
    else:
        grid = pre.round_half_up(pre.op("Mul", [INPUT_NAME, pre.const("to_255", np.float32(255.0))]))
    enlarged = pre.round_half_up(pre.clip(pre.enlarge(grid, channels, scale), 0.0, 255.0))
    unit = pre.scale_by(enlarged, 1.0 / 255.0, "unit")
    if kind == "rgb":
        # Two Slices rather than Split: onnx2torch has no Split at opset 18 (PORTABLE_OPS is the contract).
        def channels_of(start: int, end: int, out: str) -> None:
            bounds = [pre.const(f"{out}_{n}", np.array([v], np.int64)) for n, v in
                      (("start", start), ("end", end), ("axis", 1))]
            pre.nodes.append(helper.make_node("Slice", [unit, *bounds], [PRE + out], name=PRE + out))
        channels_of(0, 1, "y_up")
        channels_of(1, 3, "cbcr")
    else:
        pre.nodes.append(helper.make_node("Identity", [unit], [ENLARGED_Y], name=PRE + "y_up"))

    net_nodes = copy_nodes(y_model.graph, {INPUT_NAME: ENLARGED_Y, OUTPUT_NAME: NET + "y_sr"}, NET)
    y_sr = NET + "y_sr"

    if kind == "rgb":
        planes = post.op("Concat", [y_sr, PRE + "cbcr"], name="ycbcr", axis=1)
        weight, bias = frame.rgb_matrix()
        result = post.clip(post.conv1x1(planes, weight, bias, "ycbcr2rgb"), 0.0, 1.0)
    else:
        result = post.clip(y_sr, 0.0, 1.0)
    post.nodes.append(helper.make_node("Identity", [result], [OUTPUT_NAME], name=POST + "output"))

    dims_in = ["batch", channels, "height", "width"]
    dims_out = ["batch", channels, f"height_x{scale}", f"width_x{scale}"]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims_in)]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims_out)]
    if debug_outputs:
        outputs.append(helper.make_tensor_value_info(ENLARGED_Y, TensorProto.FLOAT,
                                                     ["batch", 1, f"height_x{scale}", f"width_x{scale}"]))
    graph = helper.make_graph(pre.nodes + net_nodes + post.nodes, f"drcn_{kind}_x{scale}", inputs, outputs,
                              initializer=pre.initializers + list(y_model.graph.initializer) + post.initializers)
    model = helper.make_model(graph, opset_imports=list(y_model.opset_import), producer_name="drcn",
                              producer_version=__version__)
    model.ir_version = y_model.ir_version
    frame_info = dataclasses.replace(info, kind=kind, scale=scale)
    props = frame_info.to_props()
    # How the network was made (e.g. drcn.int8: preset, scope, study) stays with the network.
    props.update({p.key: p.value for p in y_model.metadata_props if p.key.startswith("drcn.") and p.key not in props})
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def write_frame_graph(y_onnx: str | Path, target: str | Path, kind: str, scale: int,
                      ensemble: int = 1) -> OnnxModelInfo:
    """Build the frame graph of the Y graph file ``y_onnx`` (with the self-ensemble of ``ensemble`` transforms
    around its network, :mod:`drcn.runtime.ensemble_graph`) and write it to ``target`` (atomically)."""
    from drcn.runtime.ensemble_graph import build_ensemble_graph

    onnx = require("onnx", "building a whole-frame graph", "pip install 'drcn[onnx]'")
    y_model = load_onnx(y_onnx)
    if ensemble > 1:
        y_model = build_ensemble_graph(y_model, ensemble)
    info = model_info(y_model, str(y_onnx))
    model = build_frame_graph(y_model, info, kind, scale)
    with atomic.atomic_output(target) as tmp:
        onnx.save(model, str(tmp))
    return dataclasses.replace(info, kind=kind, scale=scale)


def cached_frame_graph(y_onnx: str | Path, kind: str, scale: int, log: Callable[[str], None] = lambda _: None,
                       ensemble: int = 1) -> Path:
    """The frame graph of ``y_onnx`` under ``$DRCN_CACHE/frame-graphs``, built on first use, with the frame graph
    of the INT8 graph made for ``scale`` beside it (``<name>_int8_x<scale>.onnx`` or ``<name>_int8.onnx``, found by
    :func:`drcn.onnx_meta.int8_sibling`) when it has one; ``ensemble`` > 1 puts the self-ensemble around the network of both. The folder is keyed by the checksums
    of both Y graphs, the kind, the scale, the ensemble and drcn's version (the
    builder is drcn's code), so a re-exported INT8 graph never meets a stale wrapper. Each graph is sealed with its
    checksum when written and checked on every use: a damaged one is made again (``log`` says so)."""
    from drcn.onnx_meta import int8_sibling

    int8 = int8_sibling(y_onnx, scale, log)   # the INT8 graph made for this scale
    sources = f"{file_sha256(y_onnx)}|{file_sha256(int8) if int8 else '-'}"
    key = hashlib.sha256(f"{sources}|{kind}|{scale}|{ensemble}|{__version__}".encode()).hexdigest()[:24]
    suffix = f"_e{ensemble}" if ensemble > 1 else ""
    target = cache_dir("frame-graphs") / key / f"{Path(y_onnx).stem}_{kind}_x{scale}{suffix}.onnx"
    if int8 is not None:
        int8_target = target.with_name(f"{target.stem}_int8.onnx")
        if not cache.verified(int8_target, log):
            write_frame_graph(int8, int8_target, kind, scale, ensemble)
            cache.seal(int8_target)
    if not cache.verified(target, log):
        write_frame_graph(y_onnx, target, kind, scale, ensemble)  # last: its seal means the folder is complete
        cache.seal(target)
    return target


def network_part(model):
    """The Y network inside a frame graph (ModelProto) as a Y graph of its own (``input`` the enlarged Y,
    ``output`` the network's prediction, Y metadata): what the FP16 conversion converts and its checks measure,
    before :func:`build_frame_graph` wraps the result again, so the frame's steps never leave float32."""
    onnx = require("onnx", "reading a whole-frame graph", "pip install 'drcn[onnx]'")
    from onnx import helper

    info = model_info(model, "frame graph")
    inferred = onnx.shape_inference.infer_shapes(model)
    part = onnx.utils.Extractor(inferred).extract_model([ENLARGED_Y], [NET + "y_sr"])
    rename = {ENLARGED_Y: INPUT_NAME, NET + "y_sr": OUTPUT_NAME}
    for node in part.graph.node:
        node.input[:] = [rename.get(t, t) for t in node.input]
        node.output[:] = [rename.get(t, t) for t in node.output]
    for value in (*part.graph.input, *part.graph.output):
        value.name = rename.get(value.name, value.name)
    del part.metadata_props[:]
    helper.set_model_props(part, dataclasses.replace(info, kind="y", scale=None).to_props())
    return part


@dataclasses.dataclass
class FrameParts:
    """A frame graph cut in three at the network's edges, for a backend that cannot keep some nodes in float32
    while the rest runs in bf16 (OpenVINO's CPU plugin lowers every convolution): ``pre`` and ``post`` compile in
    float32, ``network`` in the reduced precision."""

    pre: object        # input -> (enlarged Y[, Cb Cr])
    network: object    # enlarged Y -> the network's Y (a Y graph)
    post: object       # (network Y[, Cb Cr]) -> output


def split_frame_graph(model) -> FrameParts:
    onnx = require("onnx", "reading a whole-frame graph", "pip install 'drcn[onnx]'")
    info = model_info(model, "frame graph")
    carried = [PRE + "cbcr"] if info.kind == "rgb" else []
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model))
    return FrameParts(pre=extractor.extract_model([INPUT_NAME], [ENLARGED_Y, *carried]),
                      network=network_part(model),
                      post=extractor.extract_model([NET + "y_sr", *carried], [OUTPUT_NAME]))
