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
from drcn.runtime.backend import ModelSpec

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
        self._requests: dict[tuple[int, ...], object] = {}
        self.spec = ModelSpec(halo=info.halo, channels=info.config.channels, scales=info.config.scales,
                              precision=self.precision, source=str(model_path))
        self.description = (f"OpenVINO {ov.__version__.split('-')[0]} on CPU ({cpu_name()}), {self.precision} "
                            f"({why}), {mode} mode ({model_path})")

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})  # static shapes compile faster code
            compiled = self.core.compile_model(model, "CPU", self.config)
            request = self._requests[shape] = compiled.create_infer_request()
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        request = self._request(tuple(batch.shape))
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, copy=True)

    def close(self) -> None:
        self._requests.clear()
