"""Image quality metrics as the paper's table computes them: on Y, with a border of ``scale`` pixels shaved."""

from __future__ import annotations

import math

import numpy as np

from drcn.errors import DrcnError


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """(H, W, ...) -> (H - 2·border, W - 2·border, ...): drop ``border`` pixels on every side."""
    if border <= 0:
        return image
    return image[border:-border, border:-border]


def _pair(reference: np.ndarray, test: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    reference, test = np.asarray(reference), np.asarray(test)
    if reference.shape != test.shape:
        raise DrcnError(f"metric inputs differ in shape: {reference.shape} vs {test.shape}")
    if reference.ndim != 2:
        raise DrcnError(f"metrics are computed on one channel (H, W), got shape {reference.shape}")
    reference, test = shave(reference, border), shave(test, border)
    if reference.size == 0:
        raise DrcnError(f"nothing left to compare after shaving {border} pixels")
    return reference.astype(np.float64), test.astype(np.float64)


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB.

    Args:
        reference: (H, W) array in [0, data_range] (e.g. uint8 Y); compared in float64.
        test: the same shape and range.
        border: pixels shaved on each side first (the scale factor, by the paper's convention).

    Returns:
        10·log10(data_range² / MSE); ``inf`` for identical images.
    """
    reference, test = _pair(reference, test, border)
    mse = float(np.mean((reference - test) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0, data_range: float = 255.0) -> float:
    """Structural similarity as Wang et al. (2004): 11x11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03.

    scikit-image computes exactly this with ``gaussian_weights=True, use_sample_covariance=False``; the mean
    is taken over the window positions fully inside the image, as MATLAB's ``ssim_index`` 'valid' filtering.

    Args:
        reference: (H, W) array in [0, data_range]; at least 11x11 after shaving.
        test: the same shape and range.
    """
    from skimage.metrics import structural_similarity

    reference, test = _pair(reference, test, border)
    if min(reference.shape) < 11:
        raise DrcnError(f"SSIM needs at least 11x11 pixels after shaving, got {reference.shape}")
    return float(structural_similarity(reference, test, data_range=data_range, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03))
