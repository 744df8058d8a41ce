"""Seeded generators of test images: every mode drcn-run takes, odd and tiny sizes, photo-like or noise."""

from __future__ import annotations

import random

import numpy as np


def generated_image(rng: random.Random) -> np.ndarray:
    """An image of any mode drcn-run takes (gray, RGB, RGBA; 8 or 16 bits) at an odd or tiny size."""
    h, w = rng.randrange(1, 70), rng.randrange(1, 70)
    channels = rng.choice([None, 3, 3, 4])     # gray+alpha files are read as RGBA
    dtype = np.uint16 if rng.random() < 0.25 else np.uint8
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels is None else (h, w, channels)
    noise = np.random.default_rng(rng.randrange(1 << 30))
    smooth = rng.random() < 0.5
    base = noise.integers(0, top + 1, shape)
    if smooth:      # photo-like: a gradient with mild noise
        yy, xx = np.mgrid[0:h, 0:w]
        ramp = (xx * 3 + yy * 2) * top // max(1, 3 * w + 2 * h)
        base = np.clip((ramp if channels is None else ramp[..., None]) + base // 16 - top // 32, 0, top)
    return base.astype(dtype)
