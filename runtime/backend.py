"""The one interface every inference backend implements, and the registry that picks one by name.

A backend runs batches of equally sized tiles: (N, C, H, W) float32 in [0, 1] in, the same shape out. It knows
the model it runs (:class:`ModelSpec`), so the tiler can take the halo from the model instead of the user.
Backends register themselves by name; each lives in its own module and imports its heavy library lazily.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Protocol

import numpy as np

from drcn.errors import DrcnError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs to know about a model, from ONNX metadata, an engine sidecar or a weights file."""

    halo: int                        # context pixels each output pixel needs on every side
    channels: int                    # 1: the Y channel
    scales: tuple[float, ...]        # scales it was trained for
    precision: str                   # fp32 | fp16 | bf16
    source: str                      # the file it came from
    max_shape: tuple[int, int, int, int] | None = None   # (N, C, H, W) limit, e.g. a TensorRT profile


class Backend(Protocol):
    name: str
    spec: ModelSpec
    description: str   # printed to the user: library, version, device, precision

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, C, H, W) float32 (not clipped)."""

    def close(self) -> None:
        """Release devices and sessions."""


# name -> "module:Class"; modules are imported only when their backend is chosen.
_BACKENDS = {
    "tensorrt": "drcn.runtime.tensorrt_backend:TensorRTBackend",
    "openvino": "drcn.runtime.openvino_backend:OpenVINOBackend",
    "onnxruntime": "drcn.runtime.onnxruntime_backend:OnnxRuntimeBackend",
    "torch": "drcn.runtime.torch_backend:TorchBackend",
}
# What kind of model file each backend reads.
MODEL_KIND = {"tensorrt": "engine", "openvino": "onnx", "onnxruntime": "onnx", "torch": "weights"}


def backend_names() -> list[str]:
    return [name for name in _BACKENDS if _module_exists(name)]


def _module_exists(name: str) -> bool:
    module = _BACKENDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


def backend_class(name: str):
    if name not in _BACKENDS or not _module_exists(name):
        raise DrcnError(f"--backend: unknown backend '{name}' (choose from auto, {', '.join(backend_names())})")
    module, cls = _BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, model_path: str, **options) -> Backend:
    """Instantiate backend ``name`` on ``model_path`` (an engine, ONNX or weights file as the backend needs)."""
    return backend_class(name)(model_path, **options)
