"""DRCN's training objective: recursive supervision plus the ensemble loss, with α decaying from 1 to 0.

    L = α · (1/D) Σ_d MSE(ŷ_d, y) + (1 − α) · MSE(ŷ, y)        (+ β‖θ‖² as the optimiser's weight decay)

Early in training (α ≈ 1) every intermediate prediction is pushed towards the target, which gives the shared
recursive convolution a gradient at every depth; later (α → 0) only the ensembled output matters.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def alpha_at(step: int, decay_steps: int) -> float:
    """Linear decay from 1 at step 0 to 0 at ``decay_steps`` (0 there and after)."""
    if decay_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / decay_steps)


def drcn_loss(output: torch.Tensor, intermediates: torch.Tensor, target: torch.Tensor,
              alpha: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss for one batch.

    Args:
        output: (N, C, H, W) ensembled prediction.
        intermediates: (D, N, C, H, W) predictions ŷ_d.
        target: (N, C, H, W) HR patch, float32 in [0, 1].
        alpha: weight of the recursive supervision in [0, 1].

    Returns:
        (loss, parts): the scalar to minimise and its float parts for logging.
    """
    output, intermediates = output.float(), intermediates.float()
    supervision = F.mse_loss(intermediates, target.unsqueeze(0).expand_as(intermediates))
    ensemble = F.mse_loss(output, target)
    loss = alpha * supervision + (1.0 - alpha) * ensemble
    return loss, {"loss": float(loss.detach()), "mse_intermediate": float(supervision.detach()),
                  "mse_ensemble": float(ensemble.detach())}
