"""Sample photos that every installation has offline: scikit-image's bundled ``skimage.data`` images.

They serve as the built-in demo dataset when no folder is given on the command line; with the bundled textures
(:data:`TEXTURE_NAMES`) they are the default images of the export-time checks (FP16, INT8).
"""

from __future__ import annotations

import numpy as np

SAMPLE_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket")
SAMPLE_DATASET = "skimage-samples"
# Textures, text and fine detail, also bundled: export-time checks measure on these too. On the five photos alone,
# an INT8 graph with everything quantized measured +0.001 dB and was chosen, yet lost 0.057 dB on Set14 x2; with
# these beside them the same graph measures -0.073 dB and is refused, as on training images (T91: -0.061).
TEXTURE_NAMES = ("brick", "grass", "gravel", "text", "page", "coins", "moon", "clock", "hubble_deep_field", "retina")
CHECK_DATASET = "skimage-photos-and-textures"


def load_sample(name: str) -> np.ndarray:
    """(H, W) uint8 grayscale or (H, W, 3) uint8 RGB, as ``skimage.data`` ships it."""
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())
