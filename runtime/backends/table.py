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
from drcn.optional import installed


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs to know about a model, from ONNX metadata, an engine sidecar or a weights file."""

    halo: int                        # context pixels each output pixel needs on every side, in input pixels
    channels: int                    # of the input and output: 1 (Y or grey) or 3 (RGB)
    scales: tuple[float, ...]        # scales it was trained for
    precision: str                   # fp32 | fp16 | bf16
    source: str                      # the file it came from
    max_shape: tuple[int, int, int, int] | None = None   # (N, C, H, W) limit, e.g. a TensorRT profile
    kind: str = "y"                  # y: enlarged Y in, same size out; rgb | gray: the whole frame (drcn.frame)
    scale: int = 1                   # output pixels per input pixel: 1 for a Y graph, the frame graph's scale

    @classmethod
    def of_onnx(cls, info, source: str, precision: str | None = None, **extra) -> "ModelSpec":
        """The spec of an exported graph, from its :class:`drcn.onnx_meta.OnnxModelInfo`."""
        return cls(halo=info.input_halo, channels=info.channels, scales=info.config.scales,
                   precision=precision or info.precision, source=source, kind=info.kind, scale=info.scale or 1,
                   **extra)


class Backend(Protocol):
    name: str
    spec: ModelSpec
    description: str   # printed to the user: library, version, device, precision
    runs_on_gpu: bool  # where the host would otherwise set the speed (the device path's default)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, C, s·H, s·W) float32, s = ``spec.scale`` (1 for a Y graph; not
        clipped there, clipped to [0, 1] by a frame graph)."""

    def close(self) -> None:
        """Release devices and sessions."""


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One row of the backend table: everything the runtime, the benchmarks and the variants need to know."""

    name: str
    target: str                   # "module:Class", imported only when this backend is chosen
    model_kinds: tuple[str, ...]  # the files it runs, its own first: engine | onnx | weights
    precisions: tuple[str, ...]   # what it can compute in (benchmarks' --precision)
    libraries: tuple[str, ...]    # modules of which one makes it available

    @property
    def model_kind(self) -> str:
        return self.model_kinds[0]

    def available(self) -> bool:
        return any(installed(m) for m in self.libraries)


# The one backend table. Every backend is also a drcn-bench method of the same name (torch is the reference).
BACKENDS: dict[str, BackendEntry] = {e.name: e for e in (
    # TensorRT also takes an ONNX file: it builds the engine into the cache (drcn.runtime.tensorrt.cache).
    BackendEntry("tensorrt", "drcn.runtime.backends.tensorrt_backend:TensorRTBackend", ("engine", "onnx"),
                 ("auto", "fp32", "fp16"),
                 ("tensorrt", "tensorrt_rtx")),
    BackendEntry("openvino", "drcn.runtime.backends.openvino_backend:OpenVINOBackend", ("onnx",),
                 ("auto", "fp32", "bf16", "int8", "int8/f32"), ("openvino",)),
    BackendEntry("onnxruntime", "drcn.runtime.backends.onnxruntime_backend:OnnxRuntimeBackend", ("onnx",),
                 ("auto", "fp32", "fp16"),
                 ("onnxruntime",)),
    BackendEntry("torch", "drcn.runtime.backends.torch_backend:TorchBackend", ("weights",),
                 ("auto", "fp32", "fp16", "bf16"), ("torch",)),
)}


def backend_entry(name: str) -> BackendEntry:
    if name not in BACKENDS:
        raise DrcnError(f"--backend: unknown backend '{name}' (choose from auto, {', '.join(BACKENDS)})")
    return BACKENDS[name]


def backend_class(name: str):
    module, cls = backend_entry(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, model_path: str, **options) -> Backend:
    """Instantiate backend ``name`` on ``model_path`` (an engine, ONNX or weights file as the backend needs)."""
    return backend_class(name)(model_path, **options)
