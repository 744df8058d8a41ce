"""A model opened with ``drcn-run``'s settings: the one place that turns a typed request into something that
upscales decoded frames. Used by the local run, every Ray worker and the Python API (:class:`drcn.Upscaler`).

Two interchangeable ways turn a decoded frame into an output frame, and :class:`Upscaler` picks one per frame:

- the **device path** (8-bit RGB or grey at an integer scale): the whole job runs on the backend, in a frame graph
  (``drcn.runtime.frame_graph``; ``drcn.frame_model`` on PyTorch), tiled in low-resolution pixels; the host only
  converts uint8 <-> float32;
- the **host path** (alpha, 16-bit, deep video, fractional scales, or ``--path host``): colour conversion and the
  MATLAB bicubic enlargement in numpy (:mod:`drcn.runtime.media.colour`), the Y network tiled on the backend.

Both give the same pixels (within float32 rounding flips: a grey level where a value lies on a rounding edge).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import frame
from drcn.errors import DrcnError
from drcn.limits import check_memory, check_pixels
from drcn.runtime.media import colour
from drcn.runtime.backends.table import Backend, create_backend
from drcn.runtime.tiling import run_tiled, tiled_plane

PATHS = ("auto", "host", "device")


@dataclasses.dataclass(frozen=True)
class BackendRequest:
    backend: str                 # a name in drcn.runtime.backends.table.BACKENDS
    model: str                   # the engine, ONNX or weights file it runs
    tile: int = 256              # output pixels per tile side; 0 = whole frames
    batch: int = 4
    device: str = "auto"
    precision: str = "auto"
    provider: str = "auto"
    threads: int | None = None
    path: str = "auto"           # auto (device where a frame allows), host, device
    mode: str = "latency"        # OpenVINO: latency (one request) or throughput (one request per stream in flight)
    ensemble: int = 1            # geometric self-ensemble: 1 (off), 2, 4 or 8 transforms averaged (drcn.ensemble)


@dataclasses.dataclass(frozen=True)
class ModelKind:
    kind: str = "y"              # drcn.frame.KINDS
    scale: int = 1               # a frame graph's own scale; 1 for a Y graph, engine or weights
    self_ensemble: int = 1       # flips/rotations the file averages inside (drcn-export --ensemble)


def model_kind(backend: str, model: str) -> ModelKind:
    """What the model file is: a Y graph/engine/weights is ("y", 1); a frame graph says its own kind and scale."""
    path = Path(model)
    if backend == "torch" or path.suffix == ".safetensors":
        return ModelKind()
    if path.suffix.lower() == ".onnx":
        from drcn.onnx_meta import read_onnx_info

        info = read_onnx_info(path)
        return ModelKind(info.kind, info.scale or 1, info.self_ensemble)
    from drcn.runtime.tensorrt.sidecar import read_sidecar

    sidecar = read_sidecar(path)
    return ModelKind(sidecar.kind, sidecar.scale, sidecar.self_ensemble)


@dataclasses.dataclass
class _Prepared:
    path: str                    # "host" | "device"
    data: object                 # colour.Prepared, or (C, h, w) float32 in [0, 1]
    kind: str = "y"              # device path: rgb | gray


class Upscaler:
    """Upscale decoded frames by ``scale``: ``prepare`` (any thread) -> ``infer`` (one thread) -> ``finish`` (any
    thread), or ``upscale_image`` for all three. Frames are (H, W[, C]) uint8/uint16, RGB(A) order."""

    def __init__(self, request: BackendRequest, scale: float, log: Callable[[str], None] = lambda _: None,
                 wrap_run: Callable[[Backend], Callable[[np.ndarray], np.ndarray]] | None = None,
                 fixed_windows: bool = False):
        """``wrap_run``: called with each backend as it opens; what it returns replaces the backend's ``run`` (a
        server's :class:`drcn.runtime.serve.batching.WindowScheduler`). ``fixed_windows``: every window of an image
        larger than one is tile + 2·halo (:func:`drcn.runtime.tiling.plan`), so images of any size share one window
        shape (a server keeps one compiled shape, not one per image size); the pixels are the same either way."""
        if request.path not in PATHS:
            raise DrcnError(f"--path {request.path}: choose auto, host or device")
        from drcn.ensemble import check_size

        check_size(request.ensemble)
        self.request, self.scale, self.log, self.wrap_run = request, scale, log, wrap_run
        self.fixed_windows = fixed_windows
        made = model_kind(request.backend, request.model)
        self.kind, model_scale, self.inside = made.kind, made.scale, made.self_ensemble
        self.integer_scale = frame.integer_scale(scale)
        self._backends: dict[str, Backend] = {}
        self._opening = threading.RLock()   # frames in flight on several threads may open a backend at once
        self.host_reason = "--path host"
        if self.inside > 1 and request.ensemble > 1:
            raise DrcnError(f"--ensemble {request.ensemble}: {request.model} already averages {self.inside} "
                            "flips/rotations inside the graph; drop --ensemble, or give the plain graph")
        if self.kind != "y" and request.ensemble > 1:
            raise DrcnError(f"--ensemble {request.ensemble}: {request.model} is a whole-frame graph, which clips its "
                            "output before an ensemble outside could average it; export it with the ensemble inside "
                            f"(drcn-export --{self.kind} --ensemble {request.ensemble}) or give the Y graph")
        if self.kind != "y":
            # A frame graph holds its scale and kind: only the device path, only that scale.
            if request.path == "host":
                raise DrcnError(f"--path host: {request.model} is a whole-frame ({self.kind}) graph; the host path "
                                "needs the Y graph (drcn-export --onnx without --rgb/--gray)")
            if self.integer_scale != model_scale:
                raise DrcnError(f"--scale {scale:g}: {request.model} is a x{model_scale} {self.kind} graph")
            self.device_kinds = (self.kind,)
        else:
            self.device_kinds = self._device_kinds()
        first = self.device_kinds[0] if self.device_kinds else "y"
        self.primary = self._backend(first)
        self.spec = self.primary.spec

    def with_windows(self, fixed: bool) -> "Upscaler":
        """This Upscaler cutting frames into fixed or equal windows, sharing its opened backends (a server's video
        job: every frame of a video has one size, so equal windows bring one shape and compute less than fixed ones,
        1.6x less at 640x360 with tile 256)."""
        import copy

        view = copy.copy(self)          # the backends' dict and its lock are shared, not copied
        view.fixed_windows = fixed
        return view

    def _device_kinds(self) -> tuple[str, ...]:
        """The frame kinds the device path can take with this Y model and request (empty: host path only)."""
        request = self.request
        if request.path == "host":
            return ()
        why = None
        if self.integer_scale is None:
            why = f"x{self.scale:g} is not an integer scale"
        elif request.backend == "tensorrt" and Path(request.model).suffix.lower() != ".onnx":
            why = f"{request.model} is an engine of the Y graph (build one from drcn-export --rgb for the device path)"
        if why:
            if request.path == "device":
                raise DrcnError(f"--path device: {why}")
            self.host_reason = why
            return ()
        if request.path == "auto" and request.backend != "tensorrt" and not self._backend("y").runs_on_gpu:
            # Measured on 2 cores with INT8 on both paths: the same frames/s (720p 0.98 / 0.98; bf16 device path
            # against an INT8 host path had been 10-25% slower); the host path's halo is smaller and it takes every
            # frame. On a GPU the host would set the speed.
            self.host_reason = ("the backend runs on the CPU, where the host path is as fast and takes every frame; "
                                "--path device changes it")
            return ()
        return ("rgb", "gray")

    def _backend(self, kind: str) -> Backend:
        """The backend for the host path ("y") or for the device path of ``kind``, opened on first use."""
        backend = self._backends.get(kind)
        if backend is not None:
            return backend
        with self._opening:
            if kind not in self._backends:
                self._backends[kind] = self._open(kind)
            return self._backends[kind]

    def _open(self, kind: str) -> Backend:
        request = self.request
        model, options = request.model, {}
        if kind != "y" and self.kind == "y":
            # The device path's ensemble sits inside the frame graph, around the network (before colour and clipping).
            if request.backend == "torch":
                options = {"kind": kind, "scale": self.integer_scale, "ensemble": request.ensemble}
            else:
                from drcn.runtime.frame_graph import cached_frame_graph

                model = str(cached_frame_graph(request.model, kind, self.integer_scale, self.log, request.ensemble))
        backend = create_backend(request.backend, model, device=request.device, precision=request.precision,
                                 provider=request.provider, threads=request.threads, tile=request.tile,
                                 batch=request.batch, log=self.log, mode=request.mode, for_scale=self.scale, **options)
        self._check_profile(backend)
        if self.wrap_run is not None:
            backend.run = self.wrap_run(backend)
        if request.ensemble > 1 and kind == "y":
            from drcn.ensemble import ensemble_backend

            backend.run = ensemble_backend(backend, request.ensemble)
        return backend

    def _check_profile(self, backend: Backend) -> None:
        spec, request = backend.spec, self.request
        if not (spec.max_shape and request.tile):
            return
        window = frame.input_tile(request.tile, spec.scale) + 2 * spec.halo
        if window > min(spec.max_shape[2:]) or request.batch > spec.max_shape[0]:
            backend.close()
            raise DrcnError(f"--tile {request.tile} --batch {request.batch} needs windows of {request.batch}x"
                            f"{window}x{window}, beyond the engine's profile {spec.max_shape}: rebuild it with "
                            f"drcn-trt build --tile {request.tile} --batch {request.batch}")

    @property
    def in_flight(self) -> int:
        """Frames :meth:`infer` may take at once from different threads: the backend's requests in flight
        (OpenVINO's throughput mode), else 1."""
        return max(1, int(getattr(self.primary, "in_flight", 1)))

    @property
    def description(self) -> str:
        """What runs, and which path frames take, for the line that names the backend."""
        ensemble = (f"; self-ensemble of {self.request.ensemble} flips/rotations per window"
                    if self.request.ensemble > 1 else
                    f"; self-ensemble of {self.inside} flips/rotations inside the graph" if self.inside > 1 else "")
        return self._paths_description() + ensemble

    def _paths_description(self) -> str:
        if self.device_kinds:
            others = ("; frames it cannot take (alpha, 16-bit) take the host path" if self.kind == "y" else "")
            return (f"{self.primary.description}; device path: the whole frame on the backend (colour, bicubic, "
                    f"network){others}")
        return (f"{self.primary.description}; host path ({self.host_reason}): colour and bicubic in numpy, the Y "
                f"network on the backend")

    def tiling(self) -> str:
        spec = self.spec
        if not self.request.tile:
            return "whole frames"
        if spec.kind == "y":
            return f"tiles {self.request.tile}+2x{spec.halo} halo"
        return (f"tiles of {frame.input_tile(self.request.tile, spec.scale)}+2x{spec.halo} low-resolution pixels "
                f"({self.request.tile} output)")

    # -- the three stages ------------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray, source: str = "image") -> _Prepared:
        """One decoded frame -> what :meth:`infer` takes; a frame over the pixel or memory budget (:mod:`drcn.limits`)
        is refused in one line naming ``source`` before any work."""
        if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
            raise DrcnError(f"{source}: an empty image ({'x'.join(map(str, image.shape))}) has nothing to upscale")
        check_pixels(image.shape[1], image.shape[0], source)
        check_memory(*colour.output_size(image.shape[0], image.shape[1], self.scale), source)
        kind = "gray" if image.ndim == 2 else "rgb"
        if kind in self.device_kinds and frame.device_path_reason(image.shape, image.dtype, self.scale) is None:
            return _Prepared("device", frame.to_input(image)[0], kind)
        if self.kind != "y":
            why = frame.device_path_reason(image.shape, image.dtype, self.scale) or f"a {kind} frame"
            raise DrcnError(f"this {self.kind} graph cannot take it ({why}); use the Y graph (drcn-export --onnx)")
        return _Prepared("host", colour.prepare(image, self.scale))

    def infer(self, prepared: _Prepared) -> np.ndarray:
        if prepared.path == "host":
            backend = self._backend("y")
            return tiled_plane(backend.run, self.request.tile, backend.spec.halo, self.request.batch,
                               self.fixed_windows)(prepared.data.y)
        backend = self._backend(prepared.kind)
        spec = backend.spec
        return run_tiled(backend.run, prepared.data, frame.input_tile(self.request.tile, spec.scale), spec.halo,
                         self.request.batch, spec.scale, self.fixed_windows)

    def finish(self, prepared: _Prepared, result: np.ndarray) -> np.ndarray:
        if prepared.path == "host":
            return colour.finish(prepared.data, result)
        return frame.from_output(result[None])

    def upscale_image(self, image: np.ndarray) -> np.ndarray:
        prepared = self.prepare(image)
        return self.finish(prepared, self.infer(prepared))

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
