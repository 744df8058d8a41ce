"""Small helpers for the graphs drcn builds around an exported network with the onnx helper API (the whole-frame
graph, the self-ensemble graph): named constants and nodes under one prefix, MATLAB rounding, mirrored borders,
flips and quarter turns, and copies of a network's nodes.

Only operators in :data:`drcn.runtime.frame_graph.PORTABLE_OPS` are emitted (flips are ``Slice`` with step -1).
"""

from __future__ import annotations

import numpy as np

from drcn import frame
from drcn.errors import DrcnError

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class GraphBuilder:
    """Nodes and initializers of one part of a graph, every name starting with ``prefix``."""

    def __init__(self, prefix: str):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.prefix = prefix
        self.nodes, self.initializers = [], []
        self.count = 0
        self._ints: dict[tuple[int, ...], str] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        full = self.prefix + name
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), full))
        return full

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attributes) -> str:
        self.count += 1
        out = self.prefix + (name or f"{op_type.lower()}_{self.count}")
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attributes))
        return out

    def ints(self, *values: int) -> str:
        """An int64 vector constant (one initializer per distinct value: flips and slices share them)."""
        if values not in self._ints:
            self._ints[values] = self.const(f"ints_{len(self._ints)}", np.array(values, np.int64))
        return self._ints[values]

    def round_half_up(self, x: str) -> str:
        """MATLAB's rounding of values >= 0: floor(x + 0.5) (ONNX Round is half to even)."""
        half = self.const(f"half_{self.count}", np.float32(0.5))
        return self.op("Floor", [self.op("Add", [x, half])])

    def clip(self, x: str, low: float, high: float) -> str:
        lo = self.const(f"lo_{self.count}", np.float32(low))
        hi = self.const(f"hi_{self.count}", np.float32(high))
        return self.op("Clip", [x, lo, hi])

    def take(self, x: str, start: int, end: int, axis: int, step: int | None = None) -> str:
        """``x[start:end]`` along ``axis`` (``Slice``)."""
        bounds = [self.ints(start), self.ints(end), self.ints(axis)] + ([self.ints(step)] if step else [])
        return self.op("Slice", [x, *bounds])

    def flip(self, x: str, axis: int) -> str:
        """``x`` reversed along ``axis``: a Slice with step -1 (ONNX has no Flip; every listed consumer takes it)."""
        return self.take(x, -1, INT64_MIN, axis, step=-1)

    def swap_hw(self, x: str) -> str:
        """(N, C, H, W) -> (N, C, W, H)."""
        return self.op("Transpose", [x], perm=[0, 1, 3, 2])

    def rot90(self, x: str, turns: int) -> str:
        """``numpy.rot90(x, turns, axes=(2, 3))`` on (N, C, H, W), written as numpy does it."""
        turns %= 4
        if turns == 1:
            return self.swap_hw(self.flip(x, 3))
        if turns == 2:
            return self.flip(self.flip(x, 2), 3)
        if turns == 3:
            return self.flip(self.swap_hw(x), 3)
        return x

    def scale_by(self, x: str, factor: float, name: str) -> str:
        """x · factor as x · high + x · low, both on the fp16 grid (:func:`fp16_parts`). Not a Div by 1/factor:
        OpenVINO turns a Div by a constant into a Mul by its reciprocal before ``ovc`` stores constants in fp16,
        which puts 1/255 off by 2^-12 (measured: 0.4% of RGB values a level off). For k/255 with k = 0..255 this is
        within one float32 ulp of the quotient."""
        high, low = fp16_parts(np.float32(factor))
        scaled = self.op("Mul", [x, self.const(f"{name}_high", high)])
        return self.op("Add", [scaled, self.op("Mul", [x, self.const(f"{name}_low", low)])], name=name)

    def symmetric_pad(self, x: str, axis: int) -> str:
        """Mirror PAD (2) pixels at both ends of ``axis``, edge pixel included (MATLAB imresize's borders)."""
        parts = [self.take(x, 1, 2, axis), self.take(x, 0, 1, axis), x, self.take(x, -1, INT64_MAX, axis),
                 self.take(x, -2, -1, axis)]
        return self.op("Concat", parts, axis=axis)

    def enlarge(self, x: str, channels: int, scale: int) -> str:
        """(N, C, h, w) on the 0..255 grid -> (N, C, s·h, s·w), MATLAB bicubic, before rounding."""
        padded = self.symmetric_pad(self.symmetric_pad(x, 2), 3)
        filters = frame.phase_filters(scale)                                       # (s², 5, 5) float64
        weight = np.tile(filters[:, None], (channels, 1, 1, 1))                    # (C·s², 1, 5, 5)
        phases = self.split_conv(padded, weight, None, "phases", group=channels, kernel_shape=[frame.TAPS] * 2)
        return self.op("DepthToSpace", [phases], name="enlarged", blocksize=scale, mode="CRD")

    def conv1x1(self, x: str, matrix: np.ndarray, bias: np.ndarray, name: str) -> str:
        return self.split_conv(x, matrix[:, :, None, None], bias, name, kernel_shape=[1, 1])

    def split_conv(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str, **attributes) -> str:
        """Conv(x, weight, bias) as Conv(x, high) + Conv(x, low) with both parts on the fp16 grid (:func:`fp16_parts`)
        wherever the float32 values are not already there: a converter that stores every constant in fp16 (ovc,
        pnnx) then changes nothing, and the arithmetic stays float32-accurate (the colour matrices and bicubic
        taps feed a rounding to the 0..255 grid, where fp16-rounded weights flip whole levels)."""
        bias = np.zeros(weight.shape[0]) if bias is None else bias
        (w_high, w_low), (b_high, b_low) = fp16_parts(weight), fp16_parts(bias)

        def conv(suffix: str, w: np.ndarray, b: np.ndarray) -> str:
            inputs = [x, self.const(f"{name}{suffix}_w", w), self.const(f"{name}{suffix}_b", b)]
            return self.op("Conv", inputs, name=name + suffix, **attributes)

        if not (np.any(w_low) or np.any(b_low)):      # already on the grid (e.g. the x2 and x4 bicubic taps)
            return conv("", w_high, b_high)
        return self.op("Add", [conv("_high", w_high, b_high), conv("_low", w_low, b_low)], name=name)


def topological(graph) -> list:
    """The graph's nodes in an order where every input is made before it is read (converters append casts)."""
    ready = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        left = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                left.append(node)
        if len(left) == len(pending):
            raise DrcnError(f"the Y graph has a cycle or a missing tensor at node {left[0].name}")
        pending = left
    return ordered


def copy_nodes(graph, rename: dict[str, str], prefix: str, tensor_prefix: str = "") -> list:
    """Copies of ``graph``'s nodes (in topological order) with tensors renamed by ``rename``, every other node
    output prefixed with ``tensor_prefix`` (so two copies of one network can sit in one graph, reading the same
    initializers), and node names starting with ``prefix``."""
    from onnx import NodeProto

    made = {o for node in graph.node for o in node.output}
    names = {t: tensor_prefix + t for t in made} if tensor_prefix else {}
    names.update(rename)
    copies = []
    for node in topological(graph):
        copy = NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [names.get(t, t) for t in copy.input]
        copy.output[:] = [names.get(t, t) for t in copy.output]
        name = tensor_prefix + copy.name
        copy.name = name if name.startswith(prefix) else prefix + name
        copies.append(copy)
    return copies


def fp16_grid(values: np.ndarray) -> np.ndarray:
    """float32 ``values`` moved to the nearest value fp16 can hold (still float32): what a converter that stores
    weights in fp16 (``ovc``'s default compression, pnnx's fp16 storage) would make of them."""
    return np.asarray(values, np.float32).astype(np.float16).astype(np.float32)


def fp16_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low), both on the fp16 grid, with high + low = ``values`` to about 2^-22 relative: a linear op with
    weights W computed as op(high) + op(low) keeps float32 accuracy after its weights are stored in fp16."""
    high = fp16_grid(values)
    return high, fp16_grid(np.asarray(values, np.float64) - high)


def on_fp16_grid(model) -> None:
    """Move every float32 initializer of ``model`` and every float32 Constant node's value to the fp16 grid, in
    place."""
    from onnx import TensorProto, numpy_helper

    def moved(tensor):
        return numpy_helper.from_array(fp16_grid(numpy_helper.to_array(tensor)), tensor.name)

    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(moved(init))
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(moved(attr.t))
