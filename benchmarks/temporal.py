"""``drcn-bench temporal``: does a precision make video flicker? A panning clip is made here: a static picture with a
band across it in which small bright details on a dark ground move one pixel per frame. Each frame goes through the
same :class:`drcn.Upscaler` call as drcn-run's, once per precision, and two figures come out per precision:

- **static**: the largest frame-to-frame change of the 8-bit output where the input does not change (rows further
  than the network's halo and the bicubic support from the band). Exact tiling makes it 0 for any deterministic
  backend; a backend whose result depends on what else is in the batch or the window would show it here.
- **moving**: the frame-to-frame change in the band after following the motion (frame t+1 against frame t moved by
  the pan): what a viewer sees as sparkle when a highlight is clipped in one frame and not in the next.

The band is drawn at the output's resolution and shrunk (MATLAB bicubic) into each input frame, so that it pans by
one OUTPUT pixel per frame: 1/scale of an input pixel, the sub-pixel motion of real video. (A pan by whole input
pixels is exactly shift-equivariant for every precision: measured 0 everywhere, so it shows nothing.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from drcn.deviation import Deviation


@dataclasses.dataclass(frozen=True)
class TemporalRequest:
    precisions: tuple[str, ...] = ("auto", "fp32")
    model: str | None = None           # as drcn.Upscaler's (None: the shipped model)
    backend: str = "openvino"
    scale: float = 2.0
    size: tuple[int, int] = (90, 160)  # (H, W) of the low-resolution frames
    frames: int = 8
    tile: int = 256
    seed: int = 0


def panning_clip(size: tuple[int, int], frames: int, scale: float, seed: int = 0) -> tuple[list[np.ndarray], slice]:
    """``frames`` (H, W, 3) uint8 RGB frames and the rows of the moving band: outside it every frame is the same
    smooth picture; inside it, lit dots (200-255) of 1-4 output pixels on a dark (10-40) ground move left by one
    output pixel (1/``scale`` input pixel) per frame."""
    from drcn import matlab

    h, w = size
    s = int(round(scale))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    still = np.stack([96 + 60 * np.sin(xx / 7 + c) * np.cos(yy / 9 - c) for c in (0.0, 0.8, 1.6)], -1)
    band = slice(h // 3, h // 3 + max(8, h // 3))
    rows, wide = (band.stop - band.start) * s, w * s + frames
    ground = rng.integers(10, 41, (rows, wide, 1)).repeat(3, -1).astype(np.uint8)
    for _ in range(wide * rows // 60):
        y, x, r = int(rng.integers(0, rows - 4)), int(rng.integers(0, wide - 4)), int(rng.integers(1, 5))
        ground[y:y + r, x:x + r] = rng.integers(200, 256, 3)
    clip = []
    for t in range(frames):
        frame = np.clip(np.rint(still), 0, 255).astype(np.uint8)
        frame[band] = matlab.imresize(ground[:, t:t + w * s], output_shape=(band.stop - band.start, w))
        clip.append(frame)
    return clip, band


def temporal_figures(outputs: list[np.ndarray], band: slice, scale: float, margin: int) -> dict:
    """{"static": Deviation summary, "moving": Deviation summary} of consecutive (H', W', 3) uint8 outputs; ``band``
    in input rows, ``margin`` output pixels kept away from the band's edges and the frame's."""
    s = 1                                   # the pan, in output pixels per frame
    top, bottom = int(band.start * scale), int(band.stop * scale)
    height, width = outputs[0].shape[:2]
    static_rows = np.r_[margin:max(margin, top - margin), min(height - margin, bottom + margin):height - margin]
    moving_rows = slice(top + margin, bottom - margin)
    static, moving = Deviation(), Deviation()
    for before, after in zip(outputs, outputs[1:]):
        static.add(before[static_rows, margin:width - margin], after[static_rows, margin:width - margin])
        # frame t+1 at column X shows what frame t showed at X + s
        moving.add(before[moving_rows, margin + s:width - margin], after[moving_rows, margin:width - margin - s])
    return {"static": static.summary(), "moving": moving.summary()}


def measure_temporal(request: TemporalRequest, log=lambda _: None) -> dict[str, dict]:
    """precision -> {"description", "static", "moving"[, "vs_fp32"]} (see :func:`temporal_figures`); "vs_fp32": the
    per-pixel deviation of every frame's band from fp32's same frame (where fp32 is among the precisions): the
    errors that, changing from frame to frame, would sparkle."""
    from drcn.runtime.api import Upscaler

    clip, band = panning_clip(request.size, request.frames, request.scale, request.seed)
    results, outputs = {}, {}
    for precision in request.precisions:
        with Upscaler(request.model, scale=request.scale, backend=request.backend, precision=precision,
                      tile=request.tile, log=log) as up:
            outputs[precision] = [up.upscale(frame) for frame in clip]
            margin = int(up.halo + 3 * request.scale)     # the halo and the bicubic kernel's reach, and 1
            results[precision] = {"description": up.description,
                                  **temporal_figures(outputs[precision], band, request.scale, margin)}
    if "fp32" in outputs:
        rows = slice(int(band.start * request.scale), int(band.stop * request.scale))
        for precision, frames in outputs.items():
            found = Deviation()
            for mine, reference in zip(frames, outputs["fp32"]):
                found.add(reference[rows], mine[rows])
            results[precision]["vs_fp32"] = found.summary()
    return results
