"""``--depth d``: keep the first d recursions and refit their ensemble weights by least squares.

Recursive supervision trains every intermediate prediction ŷ_d to be an SR image on its own, so a shallower
graph is a valid, faster model. Its d weights are refit to minimise ‖Σ_i w_i ŷ_i − y‖² on calibration patches,
which beats merely renormalising the trained weights w_1..w_d.
"""

from __future__ import annotations

import dataclasses
import numpy as np
import torch

from drcn import metrics
from drcn.model import DRCN


@dataclasses.dataclass
class DepthRefit:
    depth: int
    weights: torch.Tensor        # (depth,) float32, the refit ensemble weights
    psnr_renormalised: float     # calibration-patch PSNR with w_1..w_d rescaled to the full ensemble's sum
    psnr_refit: float


def _psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR over all calibration pixels: (N, 1, P, P) in [0, 1], the prediction clipped; one plane of N·P rows."""
    rows = target.shape[-1]
    return metrics.psnr(target.reshape(-1, rows), np.clip(prediction, 0, 1).reshape(-1, rows), data_range=1.0)


def refit_ensemble(model: DRCN, depth: int, inputs: np.ndarray, targets: np.ndarray) -> DepthRefit:
    """Least-squares ensemble weights for the first ``depth`` predictions.

    Args:
        inputs, targets: (N, 1, P, P) float32 in [0, 1] calibration patches (bicubic input, HR).
    """
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(inputs), 64):  # bounded memory: F feature maps per patch add up
            _, predictions = model(torch.from_numpy(inputs[start:start + 64]), return_intermediates=True)
            chunks.append(predictions[:depth].double().numpy().reshape(depth, -1))
    preds = np.concatenate(chunks, axis=1)                              # (d, pixels)
    target = targets.astype(np.float64).reshape(-1)
    trained = model.ensemble.detach().double().numpy()
    renormalised = trained[:depth] * (trained.sum() / trained[:depth].sum())
    refit, *_ = np.linalg.lstsq(preds.T, target, rcond=None)
    shape = targets.shape
    return DepthRefit(depth, torch.from_numpy(refit.astype(np.float32)),
                      _psnr((renormalised @ preds).reshape(shape), targets),
                      _psnr((refit @ preds).reshape(shape), targets))
