"""A backend opened with ``drcn-run``'s settings: the one place that turns a typed request into a running
network (``infer``: a Y plane through exact tiling). Used by the local run and by every Ray worker alike."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from drcn.errors import DrcnError
from drcn.runtime.backend import create_backend
from drcn.runtime.tiling import tiled_plane


@dataclasses.dataclass(frozen=True)
class BackendRequest:
    backend: str                 # a name in drcn.runtime.backend.BACKENDS
    model: str                   # the engine, ONNX or weights file it runs
    tile: int = 256
    batch: int = 4
    device: str = "auto"
    precision: str = "auto"
    provider: str = "auto"
    threads: int | None = None


class Upscaler:
    """``infer``: (H, W) float32 in [0, 1] -> (H, W) float32, through the backend in tiles; ``close()`` ends it."""

    def __init__(self, request: BackendRequest, log: Callable[[str], None] = lambda _: None):
        self.request = request
        self.backend = create_backend(request.backend, request.model, device=request.device,
                                      precision=request.precision, provider=request.provider,
                                      threads=request.threads, tile=request.tile, batch=request.batch, log=log)
        spec = self.backend.spec
        if spec.max_shape and request.tile:
            window = request.tile + 2 * spec.halo
            if window > min(spec.max_shape[2:]) or request.batch > spec.max_shape[0]:
                self.backend.close()
                raise DrcnError(f"--tile {request.tile} --batch {request.batch} needs windows of {request.batch}x"
                                f"{window}x{window}, beyond the engine's profile {spec.max_shape}: rebuild it with "
                                f"drcn-trt build --tile {request.tile} --batch {request.batch}")
        self.spec = spec
        self.infer: Callable[[np.ndarray], np.ndarray] = tiled_plane(self.backend.run, request.tile, spec.halo,
                                                                     request.batch)

    def close(self) -> None:
        self.backend.close()
