"""FP16 safety, measured before an FP16 graph is written: activation range and PSNR change versus fp32."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from drcn import metrics
from drcn.matlab import quantize

FP16_MAX = 65504.0


@dataclasses.dataclass
class Fp16Report:
    peak_activation: float      # largest |activation| of any conv/ReLU output, fp32 model, calibration data
    psnr_fp32: float            # mean Y-PSNR on calibration images
    psnr_fp16: float

    @property
    def headroom(self) -> float:
        return FP16_MAX / max(self.peak_activation, 1e-12)


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
    peak = activation_peak(reference, inputs)
    p32, p16 = [], []
    with torch.inference_mode():
        for (hr, _, scale), x in zip(pairs, inputs):
            border = int(np.ceil(scale))
            out32 = reference(torch.from_numpy(x)[None, None])[0, 0].numpy()
            out16 = run_fp16(x[None, None])[0, 0]
            p32.append(metrics.psnr(hr, quantize(out32), border))
            p16.append(metrics.psnr(hr, quantize(out16), border))
    return Fp16Report(peak, float(np.mean(p32)), float(np.mean(p16)))
