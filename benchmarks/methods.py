"""Super-resolution methods that ``drcn-bench quality`` can evaluate, behind one small interface.

A method maps the bicubic-upscaled Y channel to its super-resolved version. Methods register themselves by
name; heavy libraries are imported only when a method that needs them is created.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import numpy as np

from drcn.errors import DrcnError


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """What the command line says about the model to evaluate."""

    weights: str | None = None
    device: str = "auto"
    onnx: str | None = None
    engine: str | None = None
    tile: int = 0            # runtime backends: output tile side, 0 = whole image
    batch: int = 4


class Method(Protocol):
    name: str

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1], the bicubic-upscaled Y -> (H, W) float32 prediction (not clipped)."""


_FACTORIES: dict[str, Callable[[MethodOptions], Method]] = {}


def register(name: str):
    def decorate(factory: Callable[[MethodOptions], Method]):
        _FACTORIES[name] = factory
        return factory

    return decorate


def available() -> list[str]:
    return sorted(_FACTORIES)


def create(name: str, options: MethodOptions | None = None) -> Method:
    if name not in _FACTORIES:
        raise DrcnError(f"--method: unknown method '{name}' (choose from {', '.join(available())})")
    return _FACTORIES[name](options or MethodOptions())


@register("bicubic")
class Bicubic:
    """The baseline: the network input itself (MATLAB bicubic)."""

    name = "bicubic"

    def __init__(self, options: MethodOptions):
        del options

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float32, copy=True)


class BackendMethod:
    """Any runtime backend as a method: the Y plane through exact tiling (``tile`` 0 = whole image)."""

    def __init__(self, backend, name: str, tile: int = 0, batch: int = 4):
        self.backend, self.name, self.tile, self.batch = backend, name, tile, batch
        max_shape = backend.spec.max_shape
        if max_shape and not self.tile:  # an engine's profile bounds the window: use the tile it was built for
            self.tile = max_shape[2] - 2 * backend.spec.halo
            self.batch = max_shape[0]

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        from drcn.runtime.tiling import run_tiled

        return run_tiled(self.backend.run, y[None].astype(np.float32), self.tile, self.backend.spec.halo,
                         self.batch)[0]


@register("torch")
class TorchReference(BackendMethod):
    """The PyTorch model, eager fp32, whole images: the reference every backend is compared to."""

    def __init__(self, options: MethodOptions):
        from drcn.runtime.backend import create_backend
        from drcn.weights import resolve_weights

        backend = create_backend("torch", str(resolve_weights(options.weights)), device=options.device,
                                 precision="fp32")
        super().__init__(backend, "torch", tile=0)


class RuntimeMethod(BackendMethod):
    """A deployment backend (``drcn.runtime``) on the exported model, chosen like ``drcn-run`` does."""

    backend_name = ""

    def __init__(self, options: MethodOptions):
        from drcn.runtime import select
        from drcn.runtime.backend import create_backend

        choice = select.choose(engine=options.engine, onnx=options.onnx, backend=self.backend_name)
        backend = create_backend(choice.backend, str(choice.model), device=options.device)
        super().__init__(backend, self.backend_name, options.tile, options.batch)


@register("onnxruntime")
class OnnxRuntimeMethod(RuntimeMethod):
    backend_name = "onnxruntime"


@register("openvino")
class OpenVINOMethod(RuntimeMethod):
    backend_name = "openvino"


@register("tensorrt")
class TensorRTMethod(RuntimeMethod):
    backend_name = "tensorrt"
