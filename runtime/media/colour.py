"""Whole images through a Y-channel network: colour, alpha, bit depth and the bicubic pre-upscale.

The network sees exactly what it was trained on: the bicubic (MATLAB) enlargement of the Y channel of
BT.601 YCbCr, quantised to the image's bit depth, in [0, 1]. Cb and Cr are enlarged with the same bicubic,
alpha too; grayscale stays grayscale, 16-bit stays 16-bit.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from drcn import cancel, matlab
from drcn.errors import DrcnError

FINISH_BAND = 256   # rows converted back to RGB at a time
SuperResolve = Callable[[np.ndarray], np.ndarray]   # (H, W) float32 in [0, 1] -> (H, W) float32


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """MATLAB's ``imresize(A, scale)`` size: ceil(H·scale) x ceil(W·scale) (exact for integer results)."""
    return matlab.output_length(height, scale), matlab.output_length(width, scale)


@dataclasses.dataclass
class Prepared:
    """An image split into what the network sees (``y``) and what is carried around it."""

    y: np.ndarray                      # (H', W') float32 in [0, 1]: the enlarged Y (or gray) plane
    dtype: np.dtype
    chroma: np.ndarray | None = None   # (H', W', 2) enlarged Cb, Cr on the image dtype's integer grid
    alpha: np.ndarray | None = None    # (H', W') enlarged alpha, image dtype


def prepare(image: np.ndarray, scale: float) -> Prepared:
    """Everything before the network: colour conversion and the bicubic enlargement to the output size.

    Args:
        image: (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 or uint16.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise DrcnError(f"unsupported pixel type {image.dtype} (expected 8- or 16-bit)")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise DrcnError(f"unsupported image shape {image.shape} (expected gray, RGB or RGBA)")
    size = output_size(image.shape[0], image.shape[1], scale)
    peak = float(np.iinfo(image.dtype).max)

    def enlarge(plane: np.ndarray) -> np.ndarray:
        return matlab.imresize(plane, output_shape=size)  # integer in, rounded integer out (MATLAB)

    if image.ndim == 2:
        return Prepared(enlarge(image).astype(np.float32) / np.float32(peak), image.dtype)
    rgb = image[:, :, :3]
    # One plane at a time, kept on the integer grid until the network needs Y and finish needs Cb, Cr: the same
    # values as enlarging all three in float64 at once, in a fraction of the memory (the host path's peak is per
    # output pixel: benchmarks/studies/host_memory.py, held by tests/runtime/test_colour.py).
    if image.dtype == np.uint8:
        ycbcr = matlab.rgb2ycbcr(rgb)
        planes = [enlarge(ycbcr[:, :, c]) for c in range(3)]
    else:  # 16-bit: convert in float, then quantise the enlarged planes to the 16-bit grid
        ycbcr = matlab.rgb2ycbcr(rgb / peak)
        planes = [matlab.quantize(matlab.imresize(ycbcr[:, :, c], output_shape=size), np.uint16) for c in range(3)]
    del ycbcr
    y = (planes[0] / peak).astype(np.float32)
    alpha = enlarge(image[:, :, 3]) if image.shape[2] == 4 else None
    return Prepared(y, image.dtype, np.dstack(planes[1:]), alpha)


def finish(prepared: Prepared, y: np.ndarray) -> np.ndarray:
    """Everything after the network: (H', W') float32 Y -> the output image, same kind as the input."""
    if prepared.chroma is None:
        return matlab.quantize(y, prepared.dtype)
    peak = float(np.iinfo(prepared.dtype).max)
    channels = 3 if prepared.alpha is None else 4
    out = np.empty((*y.shape, channels), prepared.dtype)
    # In bands of rows: every step is per pixel, so the result is the same as the whole frame at once, with float64
    # temporaries of one band instead of the frame.
    for top in range(0, y.shape[0], FINISH_BAND):
        cancel.check()
        rows = slice(top, top + FINISH_BAND)
        ycbcr = np.dstack([y[rows].astype(np.float64), prepared.chroma[rows] / peak])
        out[rows, :, :3] = matlab.quantize(matlab.ycbcr2rgb(ycbcr), prepared.dtype)
    if prepared.alpha is not None:
        out[:, :, 3] = prepared.alpha
    return out


def upscale_image(image: np.ndarray, scale: float, sr: SuperResolve) -> np.ndarray:
    """Super-resolve one image by ``scale`` with ``sr`` run on its Y plane; returns the same kind of image
    (channels, dtype), ceil(H·scale) x ceil(W·scale)."""
    prepared = prepare(image, scale)
    return finish(prepared, sr(prepared.y))
