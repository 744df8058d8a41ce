"""The served model: the same :class:`drcn.runtime.upscaler.Upscaler` that ``drcn-run`` uses, behind a window
batcher, answering two kinds of work: an encoded image (the image endpoint, any scale the model allows) and a tensor
of the whole-frame contract that ``drcn-export --triton`` declares (the v2 endpoint, one scale and kind). No HTTP
here: typed settings in, arrays and bytes out.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from drcn import frame
from drcn.errors import DrcnError, InvalidArgument
from drcn.limits import check_pixels
from drcn.runtime.serve.batching import WindowScheduler
from drcn.runtime.serve.protocol import TensorSpec
from drcn.runtime.upscaler import BackendRequest, Upscaler

FORMATS = {"png": (".png", "image/png"), "webp": (".webp", "image/webp"), "jpeg": (".jpg", "image/jpeg")}
MIN_SCALE, MAX_SCALE = 1.1, 8.0
# Windows per backend call where the backend runs on a GPU (a call has a fixed cost there). On a CPU a window costs the
# same alone or in a batch (serve_batch1/8 in the results: 20.2 vs 18.8 requests/s), and a compiled shape holds
# activation buffers in proportion to its batch: one window at a time.
GPU_BATCH = 8


def output_size(image: np.ndarray, scale: float) -> tuple[int, int]:
    """(height, width) of ``image`` (H, W[, C]) upscaled by ``scale``, as drcn-run sizes it."""
    from drcn.runtime.media.colour import output_size as sized

    return sized(image.shape[0], image.shape[1], scale)


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """What a replica loads and how it answers; made by ``drcn-serve`` and sent to every replica."""

    request: BackendRequest           # the model and backend, exactly as drcn-run chose them
    model_reason: str = ""            # why this model (printed)
    scale: int = 2                    # the v2 endpoint's scale (the Triton repository's)
    kind: str = "rgb"                 # the v2 endpoint's contract: rgb | gray | y (as drcn-export --triton-kind)
    model_name: str = "drcn"
    max_batch: int | None = None      # windows per backend call, across requests (None: GPU_BATCH on a GPU, else 1)
    batch_wait_ms: float = 3.0

    def input_spec(self) -> TensorSpec:
        channels = 3 if self.kind == "rgb" else 1
        return TensorSpec("input", "FP32", (-1, channels, -1, -1))

    def output_spec(self) -> TensorSpec:
        return TensorSpec("output", "FP32", self.input_spec().shape)


class ServedModel:
    """One replica's model. Thread-safe: every request runs on its own thread; the backend is called from the
    batcher's one thread."""

    def __init__(self, settings: ServeSettings, log=lambda _: None):
        if settings.kind not in ("rgb", "gray", "y"):
            raise DrcnError(f"--kind {settings.kind}: rgb, gray or y")
        frame.require_integer_scale(settings.scale)
        self.settings, self.log = settings, log
        # One scheduler for every backend of the replica: the scales and kinds asked for share the cores fairly.
        self.scheduler = WindowScheduler(settings.max_batch or 1, settings.batch_wait_ms / 1000)
        self._lock = threading.Lock()
        self._upscalers: dict[float, Upscaler] = {}
        self.primary = self.upscaler(float(settings.scale))     # loads the model now: a bad file fails at start
        if settings.max_batch is None:
            self.scheduler.max_batch = GPU_BATCH if self.primary.primary.runs_on_gpu else 1
        self.description = self.primary.description
        self.backend_name = settings.request.backend
        self.precision = getattr(self.primary.primary, "precision", None) or self.primary.spec.precision

    def _wrap(self, backend):
        return self.scheduler.wrap(backend.run)

    def upscaler(self, scale: float) -> Upscaler:
        """The Upscaler for ``scale`` (one per scale asked for, opened on first use)."""
        with self._lock:
            found = self._upscalers.get(scale)
            if found is None:
                # Fixed windows: every image larger than one window brings the same window shape, whatever its size.
                found = self._upscalers[scale] = Upscaler(self.settings.request, scale, self.log, wrap_run=self._wrap,
                                                          fixed_windows=True)
            return found

    # -- the image endpoint ------------------------------------------------------------------------------------
    def upscale_image(self, image: np.ndarray, scale: float, source: str = "image") -> np.ndarray:
        """A decoded image -> the same image ``scale`` times larger: exactly what drcn-run writes for it."""
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise InvalidArgument(f"scale {scale:g}: between {MIN_SCALE:g} and {MAX_SCALE:g}")
        upscaler = self.upscaler(float(scale))
        prepared = upscaler.prepare(image, source)
        return upscaler.finish(prepared, upscaler.infer(prepared))

    # -- the v2 endpoint (the Triton repository's contract) ---------------------------------------------------
    def infer_tensor(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 in [0, 1] of the contract's kind -> (N, C, s·h, s·w) (rgb/gray: low resolution in,
        upscaled out) or the same size (y: the bicubic-upscaled Y plane in, the network's Y out)."""
        n, channels, height, width = batch.shape
        check_pixels(width, height * n, "input")
        upscaler, settings = self.primary, self.settings
        backend = self.tensor_backend()
        if settings.kind == "y":
            tile, halo, scale = upscaler.request.tile, backend.spec.halo, 1
        else:
            if min(height, width) < 2:
                raise InvalidArgument(f"input: {height}x{width} frames; a whole-frame graph takes at least 2x2")
            tile, halo, scale = frame.input_tile(upscaler.request.tile, settings.scale), backend.spec.halo, \
                settings.scale
        from drcn.runtime.tiling import run_tiled

        outputs = [run_tiled(backend.run, np.ascontiguousarray(item, dtype=np.float32), tile, halo,
                             upscaler.request.batch, scale, fixed=True) for item in batch]
        return np.stack(outputs)

    def tensor_backend(self):
        """What ``/v2/.../infer`` runs: the Y network (kind y) or the whole-frame graph of the contract's kind, whose
        own ``auto`` precision may differ from the image endpoint's (opened on first use)."""
        return self.primary._backend(self.settings.kind)

    def metadata_parameters(self) -> dict[str, str]:
        """What ``/infer`` runs, read off the backend it runs on (not the image endpoint's)."""
        backend = self.tensor_backend()
        precision = getattr(backend, "pixel_mode", None) or getattr(backend, "precision", None) or \
            backend.spec.precision
        return {"drcn.kind": self.settings.kind, "drcn.scale": str(self.settings.scale),
                "drcn.backend": self.backend_name, "drcn.precision": str(precision),
                "drcn.description": self.description}

    def close(self) -> None:
        self.scheduler.close()
        for upscaler in self._upscalers.values():
            upscaler.close()
        self._upscalers.clear()
