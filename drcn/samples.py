"""Sample photos that every installation has offline: scikit-image's bundled ``skimage.data`` images.

They serve as the built-in demo dataset when no folder is given on the command line.
"""

from __future__ import annotations

import numpy as np

SAMPLE_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket")
SAMPLE_DATASET = "skimage-samples"


def load_sample(name: str) -> np.ndarray:
    """(H, W) uint8 grayscale or (H, W, 3) uint8 RGB, as ``skimage.data`` ships it."""
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())
