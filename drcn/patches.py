"""Training-style patches of one HR Y image through the evaluation pipeline (``drcn.matlab``): used by training
(its patch set) and by export (``--depth`` refit on calibration patches)."""

from __future__ import annotations

import dataclasses

import numpy as np

from drcn import matlab


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    """Which patches to take: at every one of ``scales``, ``size`` x ``size`` pixels every ``stride`` pixels."""

    scales: tuple[float, ...] = (2.0,)
    size: int = 41
    stride: int = 21


def extract_patches(y: np.ndarray, scale: float, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray]:
    """All size x size patches at ``stride`` of one HR Y image.

    Args:
        y: (H, W) uint8 HR luma.

    Returns:
        (inputs, targets): each (P, size, size) uint8; inputs are the bicubic-degraded image.
    """
    y = matlab.modcrop(y, scale)
    empty = np.zeros((0, spec.size, spec.size), np.uint8)
    if min(y.shape) < spec.size:
        return empty, empty
    _, upscaled = matlab.bicubic_degrade(y, scale)
    rows = range(0, y.shape[0] - spec.size + 1, spec.stride)
    cols = range(0, y.shape[1] - spec.size + 1, spec.stride)
    inputs = np.stack([upscaled[r:r + spec.size, c:c + spec.size] for r in rows for c in cols])
    targets = np.stack([y[r:r + spec.size, c:c + spec.size] for r in rows for c in cols])
    return inputs, targets
