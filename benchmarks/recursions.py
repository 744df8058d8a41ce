"""PSNR of each intermediate prediction ŷ_d (d = 1..D) and of the ensemble: is recursive supervision real?"""

from __future__ import annotations

import numpy as np

from drcn import matlab, metrics
from drcn.evaluation import Dataset, degraded_pair, shave_border
from drcn.progress import Progress


def intermediate_psnr(model, dataset: Dataset, scale: float, device: str = "cpu") -> dict[str, list[float] | float]:
    """Mean Y-PSNR over ``dataset`` of every intermediate prediction and of the ensembled output.

    Args:
        model: a :class:`drcn.model.DRCN` in eval mode on ``device``.

    Returns:
        {"intermediate": [PSNR of ŷ_1, ..., ŷ_D], "ensemble": PSNR of ŷ}, same conventions as quality.
    """
    import torch

    border = shave_border(scale)
    per_d, ensemble = [], []
    with Progress(f"recursions x{scale:g} {dataset.name}", len(dataset.images)) as progress, torch.inference_mode():
        for name, load in dataset.images:
            y, upscaled = degraded_pair(load(), scale)
            x = torch.from_numpy(upscaled.astype(np.float32) / 255.0)[None, None].to(device)
            output, predictions = model(x, return_intermediates=True)
            per_d.append([metrics.psnr(y, matlab.quantize(p[0, 0].float().cpu().numpy()), border) for p in predictions])
            ensemble.append(metrics.psnr(y, matlab.quantize(output[0, 0].float().cpu().numpy()), border))
            progress.update(extra=name)
    return {"intermediate": np.mean(per_d, axis=0).tolist(), "ensemble": float(np.mean(ensemble))}
