"""The whole-frame job as fixed filters: what a graph needs around the Y network to take low-resolution RGB (or
grey) and return the upscaled frame, reproducing :mod:`drcn.runtime.media.colour`'s host path (the conventions of
:mod:`drcn.matlab`) exactly in float32.

Shared by the ONNX frame graph (``drcn.runtime.frame_graph``, built with the onnx helper API) and the PyTorch
frame module (``drcn.frame_model``), so both compute one thing:

    RGB (N, 3, h, w) float32 in [0, 1]
      -> YCbCr = round(clip(M · rgb + offset, 0, 255))            MATLAB rgb2ycbcr on uint8
      -> symmetric padding of PAD LR pixels                        MATLAB imresize mirrors its edge
      -> bicubic x s as s² phase filters of 5x5 + depth-to-space   MATLAB imresize, Keys a = -0.5, integer s
      -> round(clip(., 0, 255)) / 255                               the uint8 grid the network was trained on
      -> the network on Y; Cb, Cr carried
      -> RGB = clip(M⁻¹ · (255 · YCbCr - offset), 0, 1)             MATLAB ycbcr2rgb; the caller rounds to uint8

Grey frames skip the colour matrices (the plane is the network's channel, as the host path does for grey images).
Integer scales only: a fractional scale has no fixed phase pattern, and keeps the host path.
"""

from __future__ import annotations

import math

import numpy as np

from drcn import matlab
from drcn.errors import DrcnError

KINDS = ("y", "rgb", "gray")   # y: the network alone (bicubic-upscaled Y in, same size out); rgb/gray: whole frames
PAD = 2                        # LR pixels of symmetric padding: the bicubic kernel reaches 2 pixels out
TAPS = 2 * PAD + 1             # phase filter side


def integer_scale(scale: float) -> int | None:
    """``scale`` as an int when it is a whole number >= 2, else None."""
    rounded = round(scale)
    return int(rounded) if abs(scale - rounded) < 1e-9 and rounded >= 2 else None


def require_integer_scale(scale: float, option: str = "--scale") -> int:
    value = integer_scale(scale)
    if value is None:
        raise DrcnError(f"{option} {scale:g}: a whole-frame graph needs an integer scale (2, 3, 4, ...)")
    return value


def phase_filters(scale: int) -> np.ndarray:
    """The bicubic enlargement by ``scale`` as s² filters of 5x5 on the symmetrically padded LR plane.

    Returns:
        (s², 5, 5) float64; filter ``p·s + q`` makes the output pixels (s·i + p, s·j + q). Each is the outer
        product of MATLAB's 1-D taps for phase p (rows) and q (columns), so a valid 5x5 correlation over the
        plane padded by :data:`PAD` equals ``imresize(plane, s)`` before rounding (MATLAB normalises each row of
        taps; so does this).
    """
    if scale < 2:
        raise DrcnError(f"phase filters need an integer scale >= 2, got {scale}")
    taps = np.zeros((scale, TAPS))
    for phase in range(scale):
        offset = (phase + 0.5) / scale - 0.5       # the phase's centre in LR pixels, relative to pixel i
        taps[phase] = matlab.cubic_kernel(offset - (np.arange(TAPS) - PAD))
        taps[phase] /= taps[phase].sum()
    return np.einsum("pa,qb->pqab", taps, taps).reshape(scale * scale, TAPS, TAPS)


def lr_halo(network_halo: int, scale: int) -> int:
    """LR context pixels per side that make tiled frames exact: the network's halo in LR pixels, plus the
    bicubic's reach (its values within PAD pixels of a window edge see the window's padding, not the frame)."""
    return PAD + math.ceil(network_halo / scale)


def ycbcr_matrix() -> tuple[np.ndarray, np.ndarray]:
    """(M, offset): YCbCr (in [0, 255] units) = M · RGB (in [0, 1]) + offset; (3, 3) and (3,) float64."""
    return matlab.YCBCR_MATRIX.copy(), matlab.YCBCR_OFFSET.copy()


def rgb_matrix() -> tuple[np.ndarray, np.ndarray]:
    """(W, b): RGB in [0, 1] = W · YCbCr (in [0, 1]) + b, the inverse of :func:`ycbcr_matrix`."""
    matrix, offset = ycbcr_matrix()
    inverse = np.linalg.inv(matrix)
    return inverse * 255.0, -inverse @ offset


def to_input(image: np.ndarray) -> np.ndarray:
    """A decoded frame as a frame graph's input.

    Args:
        image: (H, W, 3) RGB or (H, W) grey, uint8.

    Returns:
        (1, 3, H, W) or (1, 1, H, W) float32 in [0, 1].
    """
    planes = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    return (planes.astype(np.float32) / np.float32(255.0))[None]


def from_output(output: np.ndarray) -> np.ndarray:
    """A frame graph's output as an image: (1, C, H, W) float32 in [0, 1] -> (H, W, 3) or (H, W) uint8,
    rounded half up as :func:`drcn.matlab.quantize`."""
    planes = np.floor(np.clip(output[0], 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    return planes[0] if planes.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(planes, 0, 2))


def device_path_reason(image_shape: tuple[int, ...], dtype: np.dtype, scale: float) -> str | None:
    """Why a frame cannot take the whole-frame graph (None: it can): 8-bit RGB or grey at an integer scale,
    at least 2 pixels on each side (the symmetric padding mirrors 2 pixels)."""
    if integer_scale(scale) is None:
        return f"x{scale:g} is not an integer scale"
    if dtype != np.uint8:
        return f"{np.dtype(dtype).name} pixels (the graph takes 8-bit frames)"
    if len(image_shape) == 3 and image_shape[2] != 3:
        return "an alpha channel" if image_shape[2] == 4 else f"{image_shape[2]} channels"
    if min(image_shape[:2]) < PAD:
        return f"{image_shape[1]}x{image_shape[0]} pixels (smaller than {PAD}x{PAD})"
    return None


def input_tile(tile: int, scale: int) -> int:
    """``--tile`` (output pixels per tile side; 0 = whole frames) in a graph's input pixels: a frame graph's tiles
    are cut in low-resolution pixels, ``tile // scale`` of them (at least 1)."""
    return 0 if tile <= 0 else max(1, tile // scale)
