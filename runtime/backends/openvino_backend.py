"""OpenVINO backend for CPUs: the exported ONNX compiled for the CPU plugin, bf16 where the CPU has it.

Precision ``auto`` asks OpenVINO itself whether this CPU supports bf16 (``OPTIMIZATION_CAPABILITIES``; AMX or
AVX-512 BF16) and uses it there, fp32 elsewhere, and says which. One compiled model per input shape (tiles all
have one shape, so this is one compile per run), kept in OpenVINO's model cache under a folder keyed by
everything that affects the compiled blob: ONNX checksum, precision, performance mode, OpenVINO version and
CPU model, so a stale blob is never reused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.cpu import cpu_name
from drcn.errors import DrcnError
from drcn.optional import require
from drcn.onnx_meta import read_onnx_info
from drcn.runtime.backends.table import ModelSpec

INSTALL = "pip install 'drcn[openvino]'"


def choose_precision(requested: str, capabilities: list[str]) -> tuple[str, str]:
    """(precision, why) for the CPU plugin. ``capabilities``: the CPU's OPTIMIZATION_CAPABILITIES."""
    supports_bf16 = "BF16" in capabilities
    if requested == "auto":
        if supports_bf16:
            return "bf16", "auto: this CPU reports bf16 support"
        return "fp32", "auto: this CPU reports no bf16 support"
    if requested == "bf16" and not supports_bf16:
        raise DrcnError("--precision bf16: this CPU does not support bf16 (OpenVINO reports "
                        f"{', '.join(capabilities)}); use fp32 or auto")
    if requested not in ("fp32", "bf16"):
        raise DrcnError(f"--precision {requested}: the OpenVINO backend runs auto, fp32 or bf16")
    return requested, "requested"


def cache_folder(onnx_sha256: str, precision: str, mode: str, version: str) -> Path:
    key = hashlib.sha256(f"{onnx_sha256}|{precision}|{mode}|{version}|{cpu_name()}".encode()).hexdigest()[:24]
    return cache_dir("openvino") / key


class OpenVINOBackend:
    name = "openvino"

    def __init__(self, model_path: str, precision: str = "auto", threads: int | None = None,
                 mode: str = "latency", **_):
        ov = require("openvino", "the OpenVINO backend", INSTALL)
        info = read_onnx_info(model_path)
        self.core = ov.Core()
        capabilities = list(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        self.precision, why = choose_precision(precision, capabilities)
        if mode not in ("latency", "throughput"):
            raise DrcnError(f"--mode {mode}: latency or throughput")
        cache = cache_folder(file_sha256(model_path), self.precision, mode, ov.__version__)
        self.config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                       "PERFORMANCE_HINT": mode.upper(), "CACHE_DIR": str(cache)}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.model = self.core.read_model(str(model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
            raise DrcnError(f"{model_path}: OpenVINO cannot read it: {str(exc).splitlines()[0]}") from None
        self.parts = None
        self.runs_on_gpu = False  # the CPU plugin only
        if info.kind != "y" and self.precision != "fp32":
            # bf16 would lower the colour conversion and the enlargement too (the 0..255 grid needs float32):
            # those parts compile apart, in f32.
            self.parts = self._compile_parts(model_path)
        self._requests: dict[tuple[int, ...], object] = {}
        self.spec = ModelSpec.of_onnx(info, str(model_path), precision=self.precision)
        self.description = (f"OpenVINO {ov.__version__.split('-')[0]} on CPU ({cpu_name()}), {self.precision} "
                            f"({why}), {mode} mode ({model_path})")

    def _compile_parts(self, model_path: str):
        import onnx

        from drcn.runtime.frame_graph import split_frame_graph

        parts = split_frame_graph(onnx.load(str(model_path)))
        f32 = {**self.config, "INFERENCE_PRECISION_HINT": "f32"}
        return [(self.core.read_model(part.SerializeToString(), b""), config)
                for part, config in ((parts.pre, f32), (parts.network, self.config), (parts.post, f32))]

    def _compiled(self, model, config: dict, shape: tuple[int, ...]):
        model = model.clone()
        model.reshape({model.inputs[0].get_any_name(): list(shape)})  # static shapes compile faster code
        return self.core.compile_model(model, "CPU", config)

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is None:
            if self.parts is None:
                request = self._compiled(self.model, self.config, shape).create_infer_request()
            else:
                request = _PartsRequest(self, shape)
            self._requests[shape] = request
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        request = self._request(tuple(batch.shape))
        if isinstance(request, _PartsRequest):
            return request.run(batch)
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, copy=True)

    def close(self) -> None:
        self._requests.clear()


class _PartsRequest:
    """A frame graph run as pre (f32) -> network (bf16) -> post (f32), compiled for one input shape."""

    def __init__(self, backend: OpenVINOBackend, shape: tuple[int, ...]):
        (pre, pre_config), (net, net_config), (post, post_config) = backend.parts
        self.pre = backend._compiled(pre, pre_config, shape)
        n, _, h, w = shape
        scale = backend.spec.scale
        self.net = backend._compiled(net, net_config, (n, 1, h * scale, w * scale))
        post = post.clone()
        post.reshape({port.get_any_name(): [n, 1 if i == 0 else 2, h * scale, w * scale]
                      for i, port in enumerate(post.inputs)})
        self.post = backend.core.compile_model(post, "CPU", post_config)
        self.requests = [c.create_infer_request() for c in (self.pre, self.net, self.post)]

    def run(self, batch: np.ndarray) -> np.ndarray:
        pre, net, post = self.requests
        pre.infer({0: batch})
        carried = [np.array(pre.get_output_tensor(i).data) for i in range(1, len(self.pre.outputs))]
        net.infer({0: np.array(pre.get_output_tensor(0).data)})
        post.infer([np.array(net.get_output_tensor(0).data), *carried])
        return np.array(post.get_output_tensor(0).data, copy=True)
