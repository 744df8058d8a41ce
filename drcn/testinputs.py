"""Synthetic network inputs for checks and timings where no real image is wanted (export verification,
latency runs): deterministic, image-like, any shape."""

from __future__ import annotations

import numpy as np


def smooth_test_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """An image-like (N, C, H, W) float32 in [0, 1]: smooth gradients plus texture, not white noise."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)[None, None] + 0.1 * rng.standard_normal((n, c, h, w))
    return np.clip(base, 0, 1).astype(np.float32)
