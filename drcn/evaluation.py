"""Evaluation as the paper's table does it, shared by training (validation), export (calibration) and the
benchmarks: HR image sets, their degraded pairs, and Y-PSNR / SSIM of a super-resolver (see ``drcn.matlab``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from drcn import matlab, metrics
from drcn.errors import DrcnError
from drcn.images import list_images, read_image
from drcn.progress import Progress
from drcn.samples import CHECK_DATASET, SAMPLE_DATASET, SAMPLE_NAMES, TEXTURE_NAMES, load_sample


class Method(Protocol):
    """Anything that super-resolves a Y plane: a benchmark method, the model being trained, a backend."""

    name: str

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1], the bicubic-upscaled Y -> (H, W) float32 prediction (not clipped)."""


@dataclasses.dataclass
class Dataset:
    """A named list of HR images, each loaded on demand as (H, W) or (H, W, 3|4) uint8/uint16."""

    name: str
    images: list[tuple[str, Callable[[], np.ndarray]]]


def folder_dataset(folder: str | Path) -> Dataset:
    """Every image directly inside ``folder`` (a one-line error if there is none), named after the folder."""
    files = list_images(folder)
    return Dataset(Path(folder).resolve().name, [(f.name, lambda f=f: read_image(f)) for f in files])


def sample_dataset() -> Dataset:
    """scikit-image's bundled photos: present on every install, never a test set."""
    return Dataset(SAMPLE_DATASET, [(n, lambda n=n: load_sample(n)) for n in SAMPLE_NAMES])


def check_dataset() -> Dataset:
    """scikit-image's bundled photos and textures: what export-time checks measure on without --calib."""
    return Dataset(CHECK_DATASET, [(n, lambda n=n: load_sample(n)) for n in SAMPLE_NAMES + TEXTURE_NAMES])


@dataclasses.dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float


def shave_border(scale: float) -> int:
    """The paper shaves ``scale`` pixels; for non-integer scales, the next integer."""
    return int(math.ceil(scale))


def check_measurable(shape: tuple[int, ...], scale: float, source: str) -> None:
    """One line naming ``source`` when an HR image of ``shape`` leaves nothing to measure at ``scale``: after the
    mod-crop and the shaved border of ``scale`` pixels, at least one pixel must be left."""
    period, border = matlab.scale_period(scale), shave_border(scale)
    need = period * math.ceil((2 * border + 1) / period)
    height, width = shape[:2]
    if min(height - height % period, width - width % period) < need:
        raise DrcnError(f"{source}: {width}x{height} is too small to measure at x{scale:g} (at least {need}x{need} "
                        f"pixels: a multiple of {period}, with a border of {border} shaved on each side)")


def degraded_pair(hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """HR image -> (HR Y, network input), both (H, W) uint8: mod-crop, Y, MATLAB bicubic down and up."""
    y = matlab.luma(matlab.modcrop(hr, scale))
    return y, matlab.bicubic_degrade(y, scale)[1]


def predict(method: Method, hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(HR Y, prediction), both (H, W) uint8: ``hr`` degraded the paper's way and super-resolved by ``method``, the
    prediction rounded to uint8 as the official test code does (``uint8(im_h * 255)``)."""
    y, upscaled = degraded_pair(hr, scale)
    return y, matlab.quantize(method.upscale_y(upscaled.astype(np.float32) / 255.0))


def score_prediction(y: np.ndarray, prediction: np.ndarray, scale: float) -> tuple[float, float]:
    """(Y-PSNR, SSIM) of ``prediction`` against the HR Y, both (H, W) uint8, ``scale`` pixels shaved."""
    border = shave_border(scale)
    return metrics.psnr(y, prediction, border), metrics.ssim(y, prediction, border)


def score_image(method: Method, hr: np.ndarray, scale: float) -> tuple[float, float]:
    """Degrade ``hr`` the paper's way, super-resolve it with ``method``, score Y against the HR Y."""
    return score_prediction(*predict(method, hr, scale), scale)


def evaluate(method: Method, dataset: Dataset, scale: float,
             predictions: dict[str, np.ndarray] | None = None) -> list[ImageScore]:
    """Every image of ``dataset`` scored; ``predictions`` (optional) receives each (H, W) uint8 prediction by image
    name, for a per-pixel comparison of two methods (:mod:`drcn.deviation`)."""
    scores = []
    with Progress(f"{method.name} x{scale:g} {dataset.name}", len(dataset.images)) as progress:
        for name, load in dataset.images:
            hr = load()
            check_measurable(hr.shape, scale, f"{name} (in {dataset.name})")
            y, prediction = predict(method, hr, scale)
            psnr, ssim = score_prediction(y, prediction, scale)
            if predictions is not None:
                predictions[name] = prediction
            scores.append(ImageScore(name, psnr, ssim))
            progress.update(extra=name)
    return scores


def summarise(scores: Iterable[ImageScore]) -> dict[str, float | int]:
    """Mean PSNR and SSIM over images (the paper averages per-image PSNRs)."""
    scores = list(scores)
    return {"psnr": float(np.mean([s.psnr for s in scores])), "ssim": float(np.mean([s.ssim for s in scores])),
            "images": len(scores)}
