"""The Python API for applications: ``drcn.Upscaler`` and ``drcn.upscale`` (re-exported lazily by ``drcn``).

    import drcn
    with drcn.Upscaler(scale=2) as up:            # the shipped model; backend, precision and tile as drcn-run
        big = up.upscale(image)                   # numpy (H, W[, C]) uint8/uint16, or a PIL image
    big = drcn.upscale(image, scale=2)            # one-off

The same :class:`drcn.runtime.upscaler.Upscaler` that ``drcn-run`` uses turns the image into the output, so an
image read from a file gives exactly the pixels ``drcn-run`` writes for that file.
"""

from __future__ import annotations

import math
import numbers
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from drcn.errors import DrcnError, InvalidArgument


def _check_number(name: str, value: Any, integer: bool = False, minimum: float | None = None,
                  above: float | None = None) -> None:
    """One :class:`InvalidArgument` line naming ``name`` unless ``value`` is a finite real (an int where
    ``integer``) within the bound."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(float(value)):
        raise InvalidArgument(f"{name} must be a finite {'whole ' if integer else ''}number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{name} must be >= {minimum:g}, got {value!r}")
    if above is not None and not value > above:
        raise InvalidArgument(f"{name} must be greater than {above:g}, got {value!r}")


def _check_image(array: np.ndarray) -> None:
    """(H, W), (H, W, 3) or (H, W, 4) uint8/uint16 with H, W >= 1, else one line naming ``image``."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidArgument(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InvalidArgument(f"image is empty (shape {array.shape}): nothing to upscale")
    if array.dtype not in (np.uint8, np.uint16):
        raise InvalidArgument(f"image must be uint8 or uint16, got {array.dtype}")


def _model_arguments(model: str | Path | None) -> dict[str, str | None]:
    """``model`` as drcn-run's --engine / --onnx / --weights, by its suffix."""
    if model is None:
        return {}
    suffix = Path(model).suffix.lower()
    kind = {".engine": "engine", ".plan": "engine", ".onnx": "onnx", ".safetensors": "weights"}.get(suffix)
    if kind is None:
        raise DrcnError(f"{model}: a model is an .engine, .onnx or .safetensors file")
    return {kind: str(model)}


def _to_array(image: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(H, W[, C]) uint8/uint16 RGB(A) array, and how to give the result back in the caller's type."""
    if isinstance(image, np.ndarray):
        return image, lambda out: out
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        mode = image.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image).astype(np.uint16)
            return array, lambda out: Image.fromarray(out)
        if mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in mode else "RGB")
        return np.asarray(image), lambda out: Image.fromarray(out)
    raise DrcnError(f"upscale() takes a numpy array (H, W[, C]) or a PIL image, not {type(image).__name__}")


class Upscaler:
    """A model held open for many images; a context manager (``close()`` releases the backend).

    Args:
        model: an ``.engine``, ``.onnx`` or ``.safetensors`` file; None: ``model.engine`` / ``model.onnx`` in the
            working directory, else the shipped model (as drcn-run).
        scale: the upscaling factor (> 1).
        backend: as drcn-run's ``--backend`` (auto, tensorrt, openvino, onnxruntime, torch).
        precision: as ``--precision`` (auto: on OpenVINO the fastest precision within the on-CPU check's limits).
        tile: output tile side (0: whole images); tiling is exact.
        batch: windows per backend call.
        device: PyTorch's device (auto, cpu, cuda).
        provider: ONNX Runtime's provider (auto, cpu, cuda, tensorrt).
        threads: CPU threads for inference (None: the library's choice).
        path: auto, host or device (where colour and bicubic run).
        ensemble: the geometric self-ensemble, 1, 2, 4 or 8 transforms.
        log: where the backend's messages go (default: nowhere).

    One Upscaler may be shared by several threads: each call's colour conversion and bicubic enlargement run on its
    own thread, the network runs one call at a time (serialised inside; results equal one thread's). Bad arguments
    raise :class:`drcn.errors.InvalidArgument` (a ``ValueError``) naming the argument.
    """

    def __init__(self, model: str | Path | None = None, *, scale: float = 2.0, backend: str = "auto",
                 precision: str = "auto", tile: int = 256, batch: int = 4, device: str = "auto",
                 provider: str = "auto", threads: int | None = None, path: str = "auto", ensemble: int = 1,
                 log: Callable[[str], None] = lambda _: None):
        from drcn.runtime.backends import select
        from drcn.runtime.upscaler import BackendRequest, Upscaler as Stages

        _check_number("scale", scale, above=1)
        _check_number("tile", tile, integer=True, minimum=0)
        _check_number("batch", batch, integer=True, minimum=1)
        if threads is not None:
            _check_number("threads", threads, integer=True, minimum=1)
        _check_number("ensemble", ensemble, integer=True, minimum=1)
        from drcn.ensemble import SUBSETS

        if ensemble not in SUBSETS:
            raise InvalidArgument(f"ensemble must be 1, 2, 4 or 8, got {ensemble!r}")
        choice = select.choose(backend=backend, **_model_arguments(model))
        request = BackendRequest(choice.backend, str(choice.model), tile=tile, batch=batch, device=device,
                                 precision=precision, provider=provider, threads=threads, path=path,
                                 ensemble=int(ensemble))
        self.scale = float(scale)
        self._stages = Stages(request, self.scale, log)
        self.description = self._stages.description
        # Colour and bicubic run on the calling threads; the network one call at a time unless the backend keeps
        # requests in flight itself (OpenVINO's throughput mode): sharing one Upscaler across threads is safe.
        self._infer_lock = threading.Lock() if self._stages.in_flight <= 1 else None

    @property
    def halo(self) -> int:
        """How far (output pixels) each output pixel's value reaches into its input: the network's receptive
        field radius; a change in the input moves no output pixel further away than this (plus the bicubic
        kernel's 2 input pixels)."""
        return int(self._stages.spec.halo)

    def upscale(self, image: Any) -> Any:
        """``image`` ``scale`` times larger, of the same kind: numpy (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA,
        uint8 or uint16 -> the same dtype and channels, ceil(H·s) x ceil(W·s); a PIL image -> a PIL image."""
        if self._stages is None:
            raise DrcnError("this Upscaler is closed")
        array, give_back = _to_array(image)
        array = np.ascontiguousarray(array)
        _check_image(array)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        stages = self._stages
        prepared = stages.prepare(array)
        if self._infer_lock is None:
            result = stages.infer(prepared)
        else:
            with self._infer_lock:
                result = stages.infer(prepared)
        return give_back(stages.finish(prepared, result))

    def close(self) -> None:
        if self._stages is not None:
            self._stages.close()
            self._stages = None

    def __enter__(self) -> "Upscaler":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def upscale(image: Any, scale: float = 2.0, **options) -> Any:
    """One image, one call: ``Upscaler(scale=scale, **options).upscale(image)``, closed afterwards."""
    with Upscaler(scale=scale, **options) as upscaler:
        return upscaler.upscale(image)
