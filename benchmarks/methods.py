"""Super-resolution methods that ``drcn-bench quality`` can evaluate (the :class:`drcn.evaluation.Method`
interface): the bicubic baseline, the PyTorch reference, and every runtime backend of
:data:`drcn.runtime.backends.table.BACKENDS` under its own name. Heavy libraries are imported only when a method that
needs them is created.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from drcn.errors import DrcnError
from drcn.evaluation import Method
from drcn.runtime.backends.table import BACKENDS, create_backend
from drcn.runtime.tiling import tiled_plane


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """What the command line says about the model to evaluate."""

    weights: str | None = None
    device: str = "auto"
    onnx: str | None = None
    engine: str | None = None
    tile: int = 0            # runtime backends: output tile side, 0 = whole image
    batch: int = 4
    precision: str = "auto"  # runtime backends: as drcn-run's --precision
    ensemble: int = 1        # runtime backends: the self-ensemble around each window (drcn.ensemble)
    scale: float | None = None   # the scale measured, for a precision chosen per scale as drcn-run chooses it


class Bicubic:
    """The baseline: the network input itself (MATLAB bicubic)."""

    name = "bicubic"

    def __init__(self, options: MethodOptions):
        del options

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float32, copy=True)


class BackendMethod:
    """Any runtime backend as a method: the Y plane through exact tiling (``tile`` 0 = whole image), with the
    self-ensemble of ``ensemble`` transforms around each window as drcn-run applies it."""

    def __init__(self, backend, name: str, tile: int = 0, batch: int = 4, ensemble: int = 1):
        from drcn.ensemble import ensemble_backend

        self.backend, self.name, self.tile, self.batch = backend, name, tile, batch
        max_shape = backend.spec.max_shape
        if max_shape and not self.tile:  # an engine's profile bounds the window: use the tile it was built for
            self.tile = max_shape[2] - 2 * backend.spec.halo
            self.batch = max_shape[0]
        self.upscale_y = tiled_plane(ensemble_backend(backend, ensemble), self.tile, backend.spec.halo, self.batch)


def torch_reference(options: MethodOptions) -> BackendMethod:
    """The PyTorch model, eager fp32, whole images: the reference every backend is compared to."""
    from drcn.weights import resolve_weights

    backend = create_backend("torch", str(resolve_weights(options.weights)), device=options.device,
                             precision="fp32")
    return BackendMethod(backend, "torch", tile=0)


def runtime_method(name: str) -> Callable[[MethodOptions], BackendMethod]:
    """A deployment backend on the exported model, with the model chosen as ``drcn-run`` chooses it."""

    def create(options: MethodOptions) -> BackendMethod:
        from drcn.runtime.backends import select

        choice = select.choose(engine=options.engine, onnx=options.onnx, backend=name)
        backend = create_backend(choice.backend, str(choice.model), device=options.device,
                                 precision=options.precision, for_scale=options.scale)
        label = name if options.ensemble == 1 else f"{name} ensemble {options.ensemble}"
        return BackendMethod(backend, label, options.tile, options.batch, options.ensemble)

    return create


_FACTORIES: dict[str, Callable[[MethodOptions], Method]] = {
    "bicubic": Bicubic, "torch": torch_reference,
    **{name: runtime_method(name) for name, entry in BACKENDS.items() if entry.model_kind != "weights"},
}


def available() -> list[str]:
    return sorted(_FACTORIES)


def create(name: str, options: MethodOptions | None = None) -> Method:
    if name not in _FACTORIES:
        raise DrcnError(f"--method: unknown method '{name}' (choose from {', '.join(available())})")
    return _FACTORIES[name](options or MethodOptions())
