"""The geometric self-ensemble inside a graph: a Y graph wrapped so that it runs its network on ``size`` flips and
quarter turns of its input (:data:`drcn.ensemble.SUBSETS`), undoes each on the output and averages, with the same
tensors in, the same tensors out and ``drcn.self_ensemble`` in its metadata.

It computes what :func:`drcn.ensemble.ensemble_run` computes around the plain graph, in the same order, so a
chaiNNer, vs-mlrt, Triton or TensorRT user gets drcn-run's ``--ensemble`` without drcn on their side, and a frame
graph built around it (``drcn-export --rgb --ensemble 8``; ``drcn-run --path device --ensemble 8``) averages the
network's Y before colour conversion and clipping, as the host path does.

The transforms that keep the input's shape (identity, mirror, half turns) go through one copy of the network as one
batch; the quarter-turned ones (height and width swapped) through a second copy. Both copies read the same
initializers: the file is barely larger than the plain graph. Operators: Slice (step -1 flips), Transpose, Concat,
Reshape, Add, Div (:data:`drcn.runtime.frame_graph.PORTABLE_OPS`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn import __version__, atomic
from drcn.ensemble import check_size, groups
from drcn.errors import DrcnError
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import INPUT_NAME, OUTPUT_NAME, OnnxModelInfo, model_info
from drcn.optional import require
from drcn.runtime.onnx_builder import GraphBuilder, copy_nodes

ENS = "drcn_ens/"


def build_ensemble_graph(y_model, size: int):
    """``y_model`` (a drcn-export Y graph, ModelProto, any precision) with the self-ensemble of ``size`` transforms
    around its network, as a new ModelProto.

    ``input`` (N, 1, H, W) float32 in [0, 1] -> ``output`` (N, 1, H, W) float32: the mean over the transforms of
    inverse(network(transform(input))), summed in :func:`drcn.ensemble.ensemble_run`'s order.
    """
    onnx = require("onnx", "building a self-ensemble graph", "pip install 'drcn[onnx]'")
    from onnx import helper

    info = model_info(y_model, "Y graph")
    check_size(size)
    if info.kind != "y":
        raise DrcnError(f"the self-ensemble wraps a Y graph; this one is '{info.kind}' (wrap the Y graph, then "
                        "build the whole-frame graph around it)")
    if info.self_ensemble > 1:
        raise DrcnError(f"this Y graph already averages {info.self_ensemble} transforms inside")
    if size == 1:
        return y_model
    b = GraphBuilder(ENS)
    parts = {}
    for g, group in enumerate(groups(size)):
        moved = [b.rot90(INPUT_NAME, turns) for turns, _ in group]
        moved = [b.flip(x, 3) if mirror else x for x, (_, mirror) in zip(moved, group)]
        stacked = b.op("Concat", moved, name=f"batch{g}", axis=0) if len(moved) > 1 else moved[0]
        out = f"{ENS}net{g}/{OUTPUT_NAME}"
        b.nodes.extend(copy_nodes(y_model.graph, {INPUT_NAME: stacked, OUTPUT_NAME: out}, ENS,
                                  tensor_prefix=f"{ENS}net{g}/"))
        # (k·N, 1, H, W) -> (k, N, H, W): 0 keeps H and W, so every shape stays inferable from the input's.
        split = b.op("Reshape", [out, b.ints(len(group), -1, 0, 0)], name=f"unbatch{g}") if len(group) > 1 else None
        for i, (turns, mirror) in enumerate(group):
            part = out if split is None else b.op("Transpose", [b.take(split, i, i + 1, 0)], perm=[1, 0, 2, 3])
            part = b.flip(part, 3) if mirror else part
            parts[(turns, mirror)] = b.rot90(part, -turns)
    order = [t for group in groups(size) for t in group]
    total = parts[order[0]]
    for t in order[1:]:
        total = b.op("Add", [total, parts[t]])
    mean = b.op("Div", [total, b.const("count", np.float32(size))], name="mean")
    b.nodes.append(helper.make_node("Identity", [mean], [OUTPUT_NAME], name=ENS + "output"))

    graph = helper.make_graph(b.nodes, f"{y_model.graph.name}_ensemble{size}", list(y_model.graph.input),
                              list(y_model.graph.output), initializer=list(y_model.graph.initializer) + b.initializers)
    model = helper.make_model(graph, opset_imports=list(y_model.opset_import), producer_name="drcn",
                              producer_version=__version__)
    model.ir_version = y_model.ir_version
    props = {p.key: p.value for p in y_model.metadata_props}
    props.update(dataclasses.replace(info, self_ensemble=size).to_props())
    helper.set_model_props(model, props)
    model.doc_string = f"{y_model.doc_string} (self-ensemble of {size} flips/rotations)".strip()
    onnx.checker.check_model(model, full_check=True)
    return model


def write_ensemble_graph(y_onnx: str | Path, target: str | Path, size: int) -> OnnxModelInfo:
    """Wrap the Y graph file ``y_onnx`` in the self-ensemble of ``size`` and write it to ``target`` (atomically)."""
    onnx = require("onnx", "building a self-ensemble graph", "pip install 'drcn[onnx]'")
    model = build_ensemble_graph(load_onnx(y_onnx), size)
    with atomic.atomic_output(target) as tmp:
        onnx.save(model, str(tmp))
    return model_info(model, str(target))

