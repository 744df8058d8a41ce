"""FP16 safety: the limits an FP16 graph must meet, shared by ``drcn-export --fp16`` (measured with PyTorch) and
``drcn-trt build --fp16`` on a converted FP32 graph (measured with ONNX Runtime)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from drcn import metrics
from drcn.errors import DrcnError
from drcn.evaluation import shave_border
from drcn.matlab import quantize

FP16_MAX = 65504.0
MAX_FP16_PSNR_DROP = 0.1    # dB, mean Y-PSNR on calibration images
PEAK_FRACTION = 0.5         # activations must stay below half the FP16 maximum


@dataclasses.dataclass
class Fp16Report:
    peak_activation: float      # largest |activation| of any convolution output, fp32 graph, calibration data
    psnr_fp32: float            # mean Y-PSNR on calibration images
    psnr_fp16: float

    @property
    def headroom(self) -> float:
        return FP16_MAX / max(self.peak_activation, 1e-12)

    @property
    def drop(self) -> float:
        return self.psnr_fp32 - self.psnr_fp16

    def summary(self) -> str:
        return (f"fp16 safety: peak activation {self.peak_activation:.3g} ({self.headroom:.0f}x below the FP16 max); "
                f"calibration PSNR fp32 {self.psnr_fp32:.3f} dB -> fp16 {self.psnr_fp16:.3f} dB "
                f"({-self.drop:+.4f})")


def check_fp16(report: Fp16Report, option: str, fallback: str) -> None:
    """A one-line error naming ``option`` when the FP16 graph is unsafe; ``fallback`` says what to do instead."""
    if report.peak_activation > PEAK_FRACTION * FP16_MAX:
        raise DrcnError(f"{option}: activations reach {report.peak_activation:.4g}, too close to the FP16 maximum "
                        f"{FP16_MAX:g}; {fallback}")
    if report.drop > MAX_FP16_PSNR_DROP:
        raise DrcnError(f"{option}: PSNR drops by {report.drop:.3f} dB on calibration images (limit "
                        f"{MAX_FP16_PSNR_DROP} dB); {fallback}")


Run = Callable[[np.ndarray], np.ndarray]   # (1, 1, H, W) float32 in [0, 1] -> (1, 1, H, W) float32


def _scored(run: Run, pairs):
    """(scale, Y-PSNR, output as (H, W) uint8) of ``run`` on each pair, in order (paper conventions: predictions
    rounded to uint8, ``scale`` pixels shaved)."""
    for hr, up, scale in pairs:
        out = quantize(run((up.astype(np.float32) / 255.0)[None, None])[0, 0])
        yield scale, metrics.psnr(hr, out, shave_border(scale)), out


def mean_psnr(run: Run, pairs) -> float:
    """Mean Y-PSNR (paper conventions, predictions rounded to uint8) of ``run`` on calibration ``pairs``
    ((HR Y, bicubic input, scale) uint8, from :func:`drcn.calibration.calibration_pairs`)."""
    return float(np.mean([psnr for _, psnr, _ in _scored(run, pairs)]))


def psnr_by_scale(run: Run, pairs) -> dict[float, float]:
    """Mean Y-PSNR per scale of ``run`` on calibration ``pairs`` (:func:`mean_psnr` per scale): a precision's limit
    holds at every scale, and one mean over all scales had hidden a 0.056 dB loss at x4 behind x2 and x3."""
    return psnr_and_outputs(run, pairs)[0]


def psnr_and_outputs(run: Run, pairs) -> tuple[dict[float, float], list[np.ndarray]]:
    """(:func:`psnr_by_scale`, each pair's output as (H, W) uint8 Y, for :func:`drcn.deviation.by_scale`)."""
    found, outputs = {}, []
    for scale, psnr, out in _scored(run, pairs):
        outputs.append(out)
        found.setdefault(scale, []).append(psnr)
    return {scale: float(np.mean(found[scale])) for scale in sorted(found)}, outputs


def change_by_scale(scores: dict[float, float], reference: dict[float, float]) -> dict[str, float]:
    """{"x2": dB, ...}: :func:`psnr_by_scale` of a reduced precision minus the reference's (negative: a loss)."""
    return {f"x{s:g}": round(scores[s] - reference[s], 4) for s in reference}


def psnr_change(run_fp32: Run, run_fp16: Run, pairs) -> tuple[float, float]:
    """:func:`mean_psnr` of both graphs on the same ``pairs``: (fp32, reduced precision)."""
    return mean_psnr(run_fp32, pairs), mean_psnr(run_fp16, pairs)
