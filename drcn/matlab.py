"""MATLAB-compatible image functions: the evaluation conventions behind the paper's table, in one place.

Everything here is numpy in, numpy out, and reproduces MATLAB's Image Processing Toolbox:

* :func:`imresize` -- ``imresize(A, scale, 'bicubic')``: Keys cubic kernel with a = -0.5, antialiased when
  shrinking, symmetric border handling, dimensions resized in MATLAB's order; integer images are resized in
  double precision and rounded and saturated to the input type once, at the end.
  OpenCV's ``INTER_CUBIC`` (a = -0.75, no antialiasing) is a different filter and gives different PSNRs.
* :func:`rgb2ycbcr` / :func:`ycbcr2rgb` -- BT.601 "studio swing" (Y in [16, 235] for uint8).
* :func:`modcrop` -- crop so that the size is divisible by the scale.

Convention used for evaluation (stated once, tested in ``tests/drcn/test_paper_bicubic.py``): Y is taken as
uint8, and each resize keeps uint8. This reproduces the paper's Bicubic column to within 0.02 dB.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from drcn import cancel
from drcn.errors import DrcnError

# MATLAB rgb2ycbcr: rows give Y, Cb, Cr from R, G, B in [0, 1]; results in [0, 255] units before the offset.
YCBCR_MATRIX = np.array(
    [[65.481, 128.553, 24.966],
     [-37.797, -74.203, 112.0],
     [112.0, -93.786, -18.214]], dtype=np.float64)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``); float64 array of the same shape."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def resize_weights(in_length: int, out_length: int, scale: float,
                   antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: the taps of a 1-D bicubic resize.

    Returns:
        weights: (out_length, P) float64, each row summing to 1.
        indices: (out_length, P) int64, 0-based input positions, mirrored at the borders (MATLAB 'symmetric').
    """
    kernel_width = 4.0
    if scale < 1.0 and antialias:
        # Stretch the kernel by 1/scale so that shrinking low-pass filters the input (MATLAB's antialiasing).
        def kernel(x):
            return scale * cubic_kernel(scale * x)
        kernel_width /= scale
    else:
        kernel = cubic_kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in input coordinates, 1-based
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0.0, axis=0)
    return weights[:, keep], indices[:, keep]


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's ``imresize`` output length for ``scale``: ceil(in_length·scale), exact where that is an integer."""
    exact = in_length * scale
    nearest = round(exact)
    # ceil(in * scale) as MATLAB, without letting 1/3 * 255 = 85.00000000000001 become 86.
    return int(nearest) if abs(exact - nearest) < 1e-6 else int(math.ceil(exact))


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # MATLAB rounds half away from zero; values here are >= 0 after clipping, so floor(x + 0.5) matches.
        # In place (the same arithmetic): a full-size float64 temporary per step is what bounds large frames.
        values = np.clip(values, info.min, info.max)
        values += 0.5
        return np.floor(values, out=values).astype(dtype)
    return values.astype(dtype)


def _resize_axis(image: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    moved = np.moveaxis(image, axis, 0).astype(np.float64, copy=False)
    out = np.zeros((weights.shape[0],) + moved.shape[1:], dtype=np.float64)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    for tap in range(weights.shape[1]):
        cancel.check()   # a served request given up stops here: one tap of a 5K frame is ~0.1 s of numpy
        term = moved[indices[:, tap]]
        term *= weights[:, tap].reshape(shape)   # in place: one full-size temporary per tap, not two
        out += term
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """``imresize(image, scale, 'bicubic')`` exactly as MATLAB computes it.

    Args:
        image: (H, W) or (H, W, C); uint8, uint16 or float (any range).
        scale: resize factor (> 1 enlarges). The output is ceil(H·scale) x ceil(W·scale).
        output_shape: (H', W') instead of ``scale``; the per-axis scale is then H'/H and W'/W.
        antialias: widen the kernel when shrinking (MATLAB's default ``'Antialiasing', true``).

    Returns:
        (H', W') or (H', W', C), same dtype as ``image``. Integer images are rounded (half away from zero)
        and saturated once, after both passes (rounding between the passes too moves Set5 x2 bicubic from
        33.652 to 33.637 dB, away from the paper's 33.66); float images are not clipped.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise DrcnError(f"imresize expects an (H, W) or (H, W, C) image, got shape {image.shape}")
    in_h, in_w = image.shape[:2]
    if output_shape is not None:
        out_h, out_w = (int(v) for v in output_shape)
        scales = (out_h / in_h, out_w / in_w)
    else:
        if scale is None or not scale > 0:
            raise DrcnError(f"imresize needs a positive scale or an output shape, got scale={scale!r}")
        scales = (float(scale), float(scale))
        out_h, out_w = output_length(in_h, scales[0]), output_length(in_w, scales[1])
    if out_h < 1 or out_w < 1:
        raise DrcnError(f"imresize: output size {out_h}x{out_w} from {in_h}x{in_w} is empty")

    out = image
    lengths = ((in_h, out_h), (in_w, out_w))
    # MATLAB resizes the dimension with the smallest scale first; ties keep rows before columns.
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        in_len, out_len = lengths[axis]
        if in_len == out_len and scales[axis] == 1.0:
            continue
        weights, indices = resize_weights(in_len, out_len, scales[axis], antialias)
        out = _resize_axis(out, axis, weights, indices)
    return _cast_like(np.asarray(out, dtype=np.float64), image.dtype)


def quantize(values: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Float image in [0, 1] -> the integer grid of ``dtype`` (MATLAB ``im2uint8``/``im2uint16``): clipped,
    scaled by the type's maximum, rounded half up. What saving a prediction as an image does to it."""
    peak = float(np.iinfo(dtype).max)
    return np.floor(np.clip(values, 0.0, 1.0) * peak + 0.5).astype(dtype)


def _unit(dtype: np.dtype) -> float:
    """What 1.0 of the float convention is in this dtype's units."""
    if dtype == np.uint8:
        return 255.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise DrcnError(f"colour conversion supports uint8 and float images, got {dtype}")


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` (BT.601, studio swing).

    Args:
        rgb: (H, W, 3) uint8 in [0, 255] or float in [0, 1], channels in R, G, B order.

    Returns:
        (H, W, 3) of the same dtype: Y in [16, 235], Cb and Cr in [16, 240] (uint8; divided by 255 for float).
        uint8 results are rounded and saturated as MATLAB does.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DrcnError(f"rgb2ycbcr expects an (H, W, 3) image, got shape {rgb.shape}")
    unit = _unit(rgb.dtype)
    ycbcr = (rgb.astype(np.float64) / unit) @ YCBCR_MATRIX.T + YCBCR_OFFSET
    return _cast_like(ycbcr * (unit / 255.0), rgb.dtype)


def rgb2y(rgb: np.ndarray) -> np.ndarray:
    """The Y channel of :func:`rgb2ycbcr`: (H, W, 3) uint8/float -> (H, W) of the same dtype and convention."""
    return rgb2ycbcr(rgb)[..., 0]


def ycbcr2rgb(ycbcr: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb``, the inverse of :func:`rgb2ycbcr`.

    Args:
        ycbcr: (H, W, 3) uint8 in [0, 255] or float in [0, 1] (Y nominally [16, 235]/255).

    Returns:
        (H, W, 3) R, G, B of the same dtype; uint8 is rounded and saturated, float is NOT clipped to [0, 1].
    """
    ycbcr = np.asarray(ycbcr)
    if ycbcr.ndim != 3 or ycbcr.shape[2] != 3:
        raise DrcnError(f"ycbcr2rgb expects an (H, W, 3) image, got shape {ycbcr.shape}")
    unit = _unit(ycbcr.dtype)
    rgb = (ycbcr.astype(np.float64) * (255.0 / unit) - YCBCR_OFFSET) @ np.linalg.inv(YCBCR_MATRIX).T
    return _cast_like(rgb * unit, ycbcr.dtype)


def scale_period(scale: float) -> int:
    """Smallest size step whose resize by 1/scale is an integer: 2 for x2, 3 for x1.5, 5 for x2.5."""
    return Fraction(scale).limit_denominator(100).numerator


def modcrop(image: np.ndarray, scale: float) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of the scale (of its numerator, for x1.5 etc.).

    Args:
        image: (H, W) or (H, W, C), any dtype.
        scale: upscaling factor > 1.

    Returns:
        a view of ``image`` of shape (H - H mod p, W - W mod p, ...), p = :func:`scale_period`.
    """
    period = scale_period(scale)
    h, w = image.shape[:2]
    return image[: h - h % period, : w - w % period]


def luma(image: np.ndarray) -> np.ndarray:
    """The channel the paper evaluates and the network sees.

    Args:
        image: (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 (uint16 is reduced to 8 bits).

    Returns:
        (H, W) uint8: Y of :func:`rgb2ycbcr` for colour images; a grayscale image as it is (no [16, 235]
        mapping, as the original test code treats Set14's ``bridge``).
    """
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = np.floor(image / 257.0 + 0.5).astype(np.uint8)
    if image.dtype != np.uint8:
        raise DrcnError(f"expected an 8- or 16-bit image, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return rgb2y(image[:, :, :3])
    raise DrcnError(f"expected a grayscale, RGB or RGBA image, got shape {image.shape}")


def bicubic_degrade(y: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The paper's degradation: LR = imresize(HR, 1/s), network input = imresize(LR, s).

    Args:
        y: (H, W) uint8 HR image whose sides are multiples of :func:`scale_period` (see :func:`modcrop`).

    Returns:
        (lr, upscaled): (H/s, W/s) and (H, W) uint8, each rounded once as MATLAB does for uint8 images.
    """
    period = scale_period(scale)
    if y.shape[0] % period or y.shape[1] % period:
        raise DrcnError(f"image size {y.shape[1]}x{y.shape[0]} is not a multiple of {period}: modcrop it first")
    lr = imresize(y, 1.0 / scale)
    return lr, imresize(lr, output_shape=y.shape[:2])
