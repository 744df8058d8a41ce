"""Calibration data for export-time decisions (FP16 safety, ``--depth`` refit): never the test sets.

Default: scikit-image's bundled photos (they ship with every install), and for the checks that measure a PSNR
change (:func:`calibration_pairs`: FP16, INT8) its bundled textures and text as well, which the photos alone
under-represent; pass training folders (e.g. T91) for a calibration drawn from the training distribution.
"""

from __future__ import annotations

import numpy as np

from drcn import matlab
from drcn.evaluation import Dataset, check_dataset, check_measurable, folder_dataset, sample_dataset
from drcn.patches import PatchSpec, extract_patches


def calibration_datasets(folders: list[str] | None, checks: bool = False) -> list[Dataset]:
    """The ``folders``, else the bundled photos (``checks``: with the bundled textures)."""
    if folders:
        return [folder_dataset(f) for f in folders]
    return [check_dataset() if checks else sample_dataset()]


def calibration_pairs(folders: list[str] | None, scales, max_side: int = 192, max_images: int | None = None):
    """(HR Y, bicubic input) uint8 pairs, centre-cropped to at most ``max_side`` pixels to bound the time; with
    ``max_images``, that many images spread evenly over all folders."""
    pairs = []
    images = [(f"{name} (in {dataset.name})", load) for dataset in calibration_datasets(folders, checks=True)
              for name, load in dataset.images]
    if max_images and len(images) > max_images:
        images = [images[round(i * len(images) / max_images)] for i in range(max_images)]
    for name, load in images:
        image = load()
        for scale in scales:
            check_measurable(image.shape, scale, f"--calib {name}")
        y = matlab.luma(image)
        h, w = y.shape
        top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        y = np.ascontiguousarray(y[top:top + max_side, left:left + max_side])
        for scale in scales:
            crop = matlab.modcrop(y, scale)
            pairs.append((crop, matlab.bicubic_degrade(crop, scale)[1], float(scale)))
    return pairs


def calibration_patches(folders: list[str] | None, scales, size: int = 41, stride: int = 21,
                        limit: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` random training-style patches: (inputs, targets), each (N, 1, size, size) float32 [0, 1]."""
    spec = PatchSpec(tuple(scales), size, stride)
    inputs, targets = [], []
    for dataset in calibration_datasets(folders):
        for _, load in dataset.images:
            y = matlab.luma(load())
            for scale in scales:
                i, t = extract_patches(y, scale, spec)
                inputs.append(i)
                targets.append(t)
    inputs, targets = np.concatenate(inputs), np.concatenate(targets)
    pick = np.random.default_rng(seed).permutation(len(inputs))[:limit]
    return (inputs[pick, None].astype(np.float32) / 255.0, targets[pick, None].astype(np.float32) / 255.0)
