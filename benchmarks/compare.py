"""``drcn-bench compare IMAGE [--hr HR]``: one PNG of the same crop side by side, labelled: nearest, bicubic
(MATLAB), drcn, and the HR original when given (with each method's Y-PSNR against it). People judge an upscaler
by looking.

The crop is the most detailed square of the output (largest gradient energy) unless ``--crop X,Y,SIZE`` says
where; panels are enlarged with nearest neighbours (``--zoom``) so single pixels stay visible.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn import matlab, metrics
from drcn.errors import DrcnError
from drcn.evaluation import shave_border
from drcn.images import write_image

LABEL_HEIGHT = 26


@dataclasses.dataclass(frozen=True)
class CompareRequest:
    image: Path                    # the low-resolution image
    output: Path
    scale: float = 2.0
    hr: Path | None = None         # the original, for a fourth panel and PSNRs
    crop: tuple[int, int, int] | None = None   # (x, y, size) in output pixels
    size: int = 128                # crop side when chosen automatically
    zoom: int = 2
    model: str | None = None
    backend: str = "auto"


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) uint8/uint16 -> (H, W, 3) uint8 for display."""
    if image.dtype == np.uint16:
        image = np.floor(image / 257.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        return np.dstack([image] * 3)
    return image[:, :, :3]


def detailed_square(image: np.ndarray, size: int) -> tuple[int, int]:
    """(x, y) of the size x size square with the most gradient energy, on a grid of half-squares."""
    grey = matlab.luma(_rgb(image)).astype(np.float64)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    h, w = energy.shape
    if h < size or w < size:
        return 0, 0
    best, where = -1.0, (0, 0)
    step = max(1, size // 2)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            score = float(energy[y:y + size, x:x + size].sum())
            if score > best:
                best, where = score, (x, y)
    return where


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    import cv2

    strip = np.full((LABEL_HEIGHT, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, panel])


def compare(request: CompareRequest, log=lambda _: None) -> dict:
    """Write the side-by-side PNG; returns what it shows (crop, panels, PSNRs)."""
    from drcn.images import read_image
    from drcn.runtime.api import Upscaler

    low = read_image(request.image)
    with Upscaler(request.model, scale=request.scale, backend=request.backend) as upscaler:
        log(f"upscaling {request.image} x{request.scale:g} with {upscaler.description}")
        sr = upscaler.upscale(low)
    out_h, out_w = sr.shape[:2]
    factor = int(round(request.scale))
    nearest = np.repeat(np.repeat(low, factor, axis=0), factor, axis=1)[:out_h, :out_w]
    if nearest.shape[:2] != (out_h, out_w):
        nearest = matlab.imresize(low, output_shape=(out_h, out_w))   # fractional scales: no clean repeat
    bicubic = matlab.imresize(low, output_shape=(out_h, out_w))
    panels = [("nearest", nearest), ("bicubic", bicubic), ("drcn", sr)]
    psnrs = {}
    if request.hr is not None:
        hr = read_image(request.hr)
        if hr.shape[:2] != (out_h, out_w):
            hr = matlab.modcrop(hr, request.scale)
        if hr.shape[:2] != (out_h, out_w):
            raise DrcnError(f"--hr {request.hr}: {hr.shape[1]}x{hr.shape[0]}, but IMAGE x{request.scale:g} is "
                            f"{out_w}x{out_h}")
        border = shave_border(request.scale)
        for name, image in panels[1:]:
            psnrs[name] = metrics.psnr(matlab.luma(hr), matlab.luma(image), border)
        panels.append(("HR original", hr))
    size = min(request.size, out_h, out_w)
    if request.crop:
        x, y, size = request.crop
        if x + size > out_w or y + size > out_h:
            raise DrcnError(f"--crop {x},{y},{size}: outside the {out_w}x{out_h} output")
    else:
        x, y = detailed_square(sr, size)
    row = []
    for name, image in panels:
        crop = _rgb(image[y:y + size, x:x + size])
        crop = np.repeat(np.repeat(crop, request.zoom, axis=0), request.zoom, axis=1)
        text = name + (f" {psnrs[name]:.2f} dB" if name in psnrs else "")
        row.append(_label(crop, text))
        row.append(np.full((row[-1].shape[0], 4, 3), 255, np.uint8))
    write_image(request.output, np.hstack(row[:-1]))
    return {"crop": (x, y, size), "panels": [name for name, _ in panels], "psnr": psnrs, "output": str(request.output)}
