"""FP16 safety of an exported graph, measured with PyTorch before it is written: activation range and PSNR
change versus fp32 (the limits are in :mod:`drcn.fp16`)."""

from __future__ import annotations

import numpy as np
import torch

from drcn.fp16 import Fp16Report, psnr_change


def activation_peak(model: torch.nn.Module, inputs: list[np.ndarray]) -> float:
    """max |x| over every Conv2d output of ``model`` (fp32) for the given (H, W) float32 inputs."""
    peak = 0.0

    def hook(_module, _inp, out):
        nonlocal peak
        peak = max(peak, float(out.detach().abs().max()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.inference_mode():
            for x in inputs:
                model(torch.from_numpy(x)[None, None])
    finally:
        for h in handles:
            h.remove()
    return peak


def fp16_report(reference: torch.nn.Module, run_fp16, pairs) -> Fp16Report:
    """Compare ``reference`` (fp32 torch) and ``run_fp16`` ((1, 1, H, W) float32 -> same) on calibration pairs."""
    inputs = [up.astype(np.float32) / 255.0 for _, up, _ in pairs]

    def run_fp32(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return reference(torch.from_numpy(x)).numpy()

    return Fp16Report(activation_peak(reference, inputs), *psnr_change(run_fp32, run_fp16, pairs))
