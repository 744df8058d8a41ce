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


TEXT_DATASET = "drcn-synthetic-text"
_WORDS = ("the quick brown fox jumps over a lazy dog", "SUBTITLE 00:01:23,456 --> 00:01:25,789", "Invoice #4711 total",
          "EXIT 12B", "mmmm wwww iiii llll 1111", "0123456789 +-*/=%", "[OK] (ready)", "Resume, naive facade")


def text_image(seed: int, side: int = 384) -> np.ndarray:
    """(side, side) uint8: lines of anti-aliased text rendered by OpenCV's Hershey fonts at 2x and shrunk by area
    (sub-pixel edges, as rendered subtitles, credits and screenshots have), dark on light or light on dark. Its
    strokes drive the recursions' activations 3.4-3.9x past the shipped INT8 graph's calibrated ranges (photos:
    1.7-2.2x), which makes it the content the INT8 studies report apart (benchmarks/studies/int8_levers.py)."""
    import cv2

    rng = np.random.default_rng(seed)
    ground, ink = (int(rng.integers(200, 256)), int(rng.integers(0, 60)))
    if seed % 2:
        ground, ink = ink, ground
    canvas = np.full((2 * side, 2 * side), ground, np.uint8)
    y = 0
    while y < 2 * side:
        scale = float(rng.uniform(0.5, 2.2))
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                               cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_TRIPLEX]))
        y += int(34 * scale) + int(rng.integers(2, 12))
        text = str(rng.choice(_WORDS))
        cv2.putText(canvas, text, (int(rng.integers(0, 40)), y), font, scale, ink, int(rng.integers(1, 4)),
                    cv2.LINE_AA)
    return cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA)


def text_dataset(count: int = 6, side: int = 384) -> Dataset:
    """``count`` generated text images (:func:`text_image`), the same on every machine."""
    return Dataset(TEXT_DATASET, [(f"text-{i}", lambda i=i: text_image(i, side)) for i in range(count)])


def calibration_pairs(folders: list[str] | None, scales, max_side: int = 192, max_images: int | None = None):
    """(HR Y, bicubic input) uint8 pairs, centre-cropped to at most ``max_side`` pixels to bound the time; with
    ``max_images``, that many images spread evenly over all folders."""
    images = [(f"{name} (in {dataset.name})", load) for dataset in calibration_datasets(folders, checks=True)
              for name, load in dataset.images]
    if max_images and len(images) > max_images:
        images = [images[round(i * len(images) / max_images)] for i in range(max_images)]
    return _pairs(images, scales, max_side)


def text_pairs(scales, side: int = 192, count: int = 6):
    """:func:`calibration_pairs` of ``count`` generated text images (:func:`text_dataset`) of ``side`` pixels."""
    return _pairs([(f"{name} (in {TEXT_DATASET})", load) for name, load in text_dataset(count, side).images],
                  scales, side)


def _pairs(images, scales, max_side: int):
    pairs = []
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
