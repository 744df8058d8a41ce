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

    def symmetric_pad(self, x: str, axis: int) -> str:
        """Mirror PAD (2) pixels at both ends of ``axis``, edge pixel included (MATLAB imresize's borders)."""
        parts = [self.take(x, 1, 2, axis), self.take(x, 0, 1, axis), x, self.take(x, -1, INT64_MAX, axis),
                 self.take(x, -2, -1, axis)]
        return self.op("Concat", parts, axis=axis)

    def enlarge(self, x: str, channels: int, scale: int) -> str:
        """(N, C, h, w) on the 0..255 grid -> (N, C, s·h, s·w), MATLAB bicubic, before rounding."""
        padded = self.symmetric_pad(self.symmetric_pad(x, 2), 3)
        filters = frame.phase_filters(scale).astype(np.float32)                   # (s², 5, 5)
        weight = np.tile(filters[:, None], (channels, 1, 1, 1))                    # (C·s², 1, 5, 5)
        phases = self.op("Conv", [padded, self.const("phase_filters", weight)], name="phases", group=channels,
                         kernel_shape=[frame.TAPS, frame.TAPS])
        return self.op("DepthToSpace", [phases], name="enlarged", blocksize=scale, mode="CRD")

    def conv1x1(self, x: str, matrix: np.ndarray, bias: np.ndarray, name: str) -> str:
        weight = self.const(f"{name}_w", matrix.astype(np.float32)[:, :, None, None])
        return self.op("Conv", [x, weight, self.const(f"{name}_b", bias.astype(np.float32))], name=name,
                       kernel_shape=[1, 1])


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
