"""An exported drcn graph as a trainable PyTorch module, for quantization-aware fine-tuning of its INT8 graph.

:class:`GraphNetwork` runs an ONNX graph of the ops drcn's Y graphs use (Conv, Relu, Add, Mul and, in a QDQ
graph, QuantizeLinear/DequantizeLinear) in PyTorch, so that what is trained is exactly what is deployed:

- every float initializer a Conv, Add or Mul reads (biases, the float first convolution, the ensemble weights)
  is a parameter; one initializer read by several nodes (the recursive convolution, used D times) is ONE
  parameter, so the recursion stays tied;
- an int8 weight (``DequantizeLinear`` of an int8 initializer, per-channel scales) becomes a float parameter,
  started from the fp32 graph's weight of the same Conv, and is fake-quantized in every forward pass with the
  graph's scales: ``clamp(round(w / s), -127, 127) * s``;
- an activation ``QuantizeLinear`` -> ``DequantizeLinear`` pair is fake-quantized with the graph's scale (fixed, or
  learned with ``learn_scales``) and zero point over the range of its integer type (uint8 after a ReLU);
- rounding is straight-through: the gradient passes as if it were the identity inside the clamp range, and is
  zero outside it (where the integer saturates).

:func:`write_back` puts the trained values into a copy of the graph (int8 weights re-rounded with the same scales;
with ``learn_scales``, the learned activation scales), so the result runs in OpenVINO, ONNX Runtime and TensorRT as any
QDQ graph drcn-export writes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from drcn.errors import DrcnError

SUPPORTED = {"Conv", "Relu", "Add", "Mul", "QuantizeLinear", "DequantizeLinear", "Identity"}
INTEGER_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}
WEIGHT_RANGE = (-127, 127)    # symmetric narrow range: what NNCF writes and TensorRT requires


def _fake_quant(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Round ``x`` to the integer grid of ``scale``/``zero`` (saturating at ``low``/``high``).

    Straight-through (LSQ's form): d/dx = 1 inside the integer range and 0 where it saturates; a scale that is a
    parameter learns from both the rounding residue inside the range and the clipped values outside it."""
    v = x / scale + zero
    rounded = v + (torch.round(v) - v).detach()
    return (torch.clamp(rounded, low, high) - zero) * scale


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class GraphNetwork(nn.Module):
    """``forward(x)``: (N, 1, H, W) float32 in [0, 1] -> (N, 1, H, W) float32, as the ONNX graph computes it.

    Args:
        model: an ONNX drcn Y graph (fp32, or a QDQ INT8 graph).
        float_model: for a QDQ graph, its fp32 graph: an int8 weight that is its Conv's fp32 weight rounded
            (matched by Conv node name) starts from the float values, which keep where within its rounding step
            each weight lies; otherwise (no fp32 graph, or a graph fine-tuned before) from the dequantized values.
        learn_scales: the activation scales are parameters too (LSQ): each quantizer learns where to trade
            clipping for resolution. Without it they stay as calibrated.
    """

    def __init__(self, model, float_model=None, learn_scales: bool = False):
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        self.nodes = list(graph.node)
        unsupported = sorted({n.op_type for n in self.nodes} - SUPPORTED)
        if unsupported:
            raise DrcnError(f"fine-tuning runs drcn's Y graphs; this one has {', '.join(unsupported)}")
        self.input_name, self.output_name = graph.input[0].name, graph.output[0].name
        arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        float_weights = {}
        if float_model is not None:
            float_arrays = {i.name: numpy_helper.to_array(i) for i in float_model.graph.initializer}
            float_weights = {n.name: float_arrays[n.input[1]] for n in float_model.graph.node
                             if n.op_type == "Conv" and n.input[1] in float_arrays}
        producers = {out: n for n in self.nodes for out in n.output}
        consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)

        self.params = nn.ParameterDict()
        self.param_of: dict[str, str] = {}        # graph tensor name -> parameter key
        self.weight_quant: dict[str, tuple[str, str, str]] = {}   # DQ output -> (param key, scale, int8 initializer)
        self.buffers_: dict[str, torch.Tensor] = {}
        self.activation_quant: dict[str, tuple[str, str, int, int]] = {}   # Q output -> (scale, zero, low, high)
        self.scale_params: dict[str, str] = {}    # activation scale initializer -> parameter key (learn_scales)
        for n in self.nodes:
            if n.op_type == "DequantizeLinear" and n.input[0] in arrays:     # an int8 weight
                q, scale = arrays[n.input[0]], arrays[n.input[1]]
                conv = next((c for c in consumers.get(n.output[0], []) if c.op_type == "Conv"), None)
                start = float_weights.get(conv.name) if conv is not None else None
                axis = int(_attributes(n).get("axis", 1))
                shape = [1] * q.ndim
                if scale.ndim:
                    shape[axis] = -1
                scale_t = torch.from_numpy(scale.astype(np.float32).reshape(shape))
                # The float weight only where it IS this int8 weight (rounds to it): a graph fine-tuned before
                # no longer matches its fp32 graph, and starts from its own values.
                if start is None or start.shape != q.shape or not np.array_equal(
                        np.clip(np.round(start / scale_t.numpy()), *WEIGHT_RANGE), q):
                    start = q.astype(np.float32) * scale_t.numpy()
                key = self._key(n.input[0])
                self.params[key] = nn.Parameter(torch.from_numpy(np.array(start, np.float32)))
                self.buffers_[n.input[1]] = scale_t
                self.weight_quant[n.output[0]] = (key, n.input[1], n.input[0])
            elif n.op_type == "QuantizeLinear":
                zero = arrays.get(n.input[2]) if len(n.input) > 2 else None
                dtype = np.dtype(np.uint8) if zero is None else zero.dtype
                if dtype not in INTEGER_RANGE:
                    raise DrcnError(f"fine-tuning: {n.name} quantizes to {dtype}, not int8/uint8")
                if learn_scales:
                    key = self._key(n.input[1])
                    self.params[key] = nn.Parameter(torch.tensor(float(arrays[n.input[1]])))
                    self.scale_params[n.input[1]] = key
                else:
                    self.buffers_[n.input[1]] = torch.tensor(float(arrays[n.input[1]]))
                zname = n.input[2] if zero is not None else f"{n.name}.zero"
                self.buffers_[zname] = torch.tensor(float(0 if zero is None else zero))
                self.activation_quant[n.output[0]] = (n.input[1], zname, *INTEGER_RANGE[dtype])
        for n in self.nodes:
            if n.op_type not in ("Conv", "Add", "Mul"):
                continue
            for i in n.input:
                if i in arrays and i not in self.param_of and arrays[i].dtype == np.float32:
                    key = self._key(i)
                    self.params[key] = nn.Parameter(torch.from_numpy(np.array(arrays[i], np.float32)))
                    self.param_of[i] = key
        self.conv_args: dict[str, dict] = {}      # Conv node name -> F.conv2d keyword arguments
        for n in self.nodes:
            if n.op_type == "Conv":
                a = _attributes(n)
                pads = a.get("pads", [0, 0, 0, 0])
                if pads[0] != pads[2] or pads[1] != pads[3]:
                    raise DrcnError(f"fine-tuning: {n.name} pads asymmetrically")
                self.conv_args[n.name] = {"stride": tuple(a.get("strides", [1, 1])), "padding": (pads[0], pads[1]),
                                          "dilation": tuple(a.get("dilations", [1, 1])),
                                          "groups": int(a.get("group", 1))}
        for n in self.nodes:     # every activation DQ must read a Q this module fake-quantizes
            if n.op_type == "DequantizeLinear" and n.output[0] not in self.weight_quant \
                    and n.input[0] not in self.activation_quant:
                producer = producers.get(n.input[0])
                raise DrcnError(f"fine-tuning: {n.name} dequantizes {n.input[0]} "
                                f"({producer.op_type if producer else 'an input'}), not a QuantizeLinear output")
        for name, tensor in self.buffers_.items():
            self.register_buffer(self._key(name), tensor, persistent=False)

    @staticmethod
    def _key(name: str) -> str:
        return "t_" + "".join(c if c.isalnum() else "_" for c in name)

    def _buffer(self, name: str) -> torch.Tensor:
        if name in self.scale_params:
            return self.params[self.scale_params[name]]
        return getattr(self, self._key(name))

    def quantized_weight(self, dq_output: str) -> torch.Tensor:
        key, scale, _ = self.weight_quant[dq_output]
        return _fake_quant(self.params[key], self._buffer(scale), torch.zeros(()), *WEIGHT_RANGE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.input_name: x}

        def value(name: str) -> torch.Tensor:
            if name in values:
                return values[name]
            if name in self.param_of:
                return self.params[self.param_of[name]]
            if name in self.weight_quant:
                return self.quantized_weight(name)
            raise DrcnError(f"fine-tuning: no value for {name}")

        for n in self.nodes:
            op = n.op_type
            if op == "Conv":
                bias = value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
                out = F.conv2d(value(n.input[0]), value(n.input[1]), bias, **self.conv_args[n.name])
            elif op == "Relu":
                out = F.relu(value(n.input[0]))
            elif op == "Add":
                out = value(n.input[0]) + value(n.input[1])
            elif op == "Mul":
                out = value(n.input[0]) * value(n.input[1])
            elif op == "Identity":
                out = value(n.input[0])
            elif op == "QuantizeLinear":
                scale, zero, low, high = self.activation_quant[n.output[0]]
                out = _fake_quant(value(n.input[0]), self._buffer(scale), self._buffer(zero), low, high)
            elif n.output[0] in self.weight_quant:      # DequantizeLinear of an int8 weight
                continue
            else:                                       # DequantizeLinear of a fake-quantized activation
                out = value(n.input[0])
            values[n.output[0]] = out
        return values[self.output_name]


def write_back(model, network: GraphNetwork):
    """A copy of ``model`` (the graph ``network`` was built from) holding ``network``'s trained values: float
    initializers replaced, int8 weights re-rounded with the graph's own per-channel scales (never trained), and
    the activation scales where they were learned."""
    from onnx import numpy_helper

    out = type(model)()
    out.CopyFrom(model)
    replacements: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for name, key in network.scale_params.items():
            value = float(network.params[key])
            if not value > 0:
                raise DrcnError(f"fine-tuning drove the scale {name} to {value}; lower --lr")
            replacements[name] = np.array(value, np.float32)
        for name, key in network.param_of.items():
            replacements[name] = network.params[key].detach().cpu().numpy().astype(np.float32)
        for _dq, (key, scale, int8_name) in network.weight_quant.items():
            w = network.params[key].detach().cpu()
            q = torch.clamp(torch.round(w / network._buffer(scale).cpu()), *WEIGHT_RANGE)
            replacements[int8_name] = q.numpy().astype(np.int8)
    for i, initializer in enumerate(out.graph.initializer):
        if initializer.name in replacements:
            new = numpy_helper.from_array(replacements[initializer.name], initializer.name)
            if tuple(new.dims) != tuple(initializer.dims):
                raise DrcnError(f"fine-tuning changed the shape of {initializer.name}")
            out.graph.initializer[i].CopyFrom(new)
    return out
