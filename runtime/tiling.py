"""Exact tiled inference: equally shaped windows, shifted inward at the borders, batched.

For a size-preserving network whose output pixel depends on a (2·halo + 1)² input neighbourhood, cutting the
image into windows of tile + 2·halo pixels and keeping only each window's central tile gives exactly the
full-image result, provided no window is zero-padded where the full image would not be. So windows are never
padded: at the image border they are shifted inward, where the image edge and the window edge coincide and
the network's own zero padding is the same in both runs. Every window of an image has the same shape, so
windows batch; an image smaller than one window runs whole.

``tile`` is an upper bound: each axis is cut into as few tiles as ``tile`` allows, of equal size (640 columns at
tile 256 are three tiles of 214 in windows of 240, not 256 + 256 + 128 in windows of 282). The computed
area at 640x360, tile 256, halo 13 falls from 2.07x to 1.29x of the output, with the same number of windows. Servers
whose input is fixed at tile + 2·halo (Triton's Y repository) ask for ``fixed=True``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from drcn import cancel


@dataclasses.dataclass(frozen=True)
class Window:
    """Input rows/cols [y0, y0 + h) x [x0, x0 + w); it yields output [oy0, oy1) x [ox0, ox1)."""

    y0: int
    x0: int
    oy0: int
    oy1: int
    ox0: int
    ox1: int


def axis_windows(length: int, tile: int, halo: int, fixed: bool = False) -> tuple[int, list[tuple[int, int, int]]]:
    """Windows along one axis: (window size, [(window start, output start, output end), ...]).

    ``fixed``: every window is tile + 2·halo; otherwise the tile shrinks to ceil(length / count), count being the
    fewest tiles of at most ``tile`` (same count, less overlap)."""
    if tile > 0 and not fixed:
        tile = -(-length // -(-length // tile))
    size = tile + 2 * halo
    if tile <= 0 or length <= size:
        return length, [(0, 0, length)]
    spans = []
    for out_start in range(0, length, tile):
        out_end = min(out_start + tile, length)
        start = min(max(out_start - halo, 0), length - size)
        spans.append((start, out_start, out_end))
    return size, spans


def plan(height: int, width: int, tile: int, halo: int,
         fixed: bool = False) -> tuple[tuple[int, int], list[Window]]:
    """((window height, window width), windows) covering an image; ``tile <= 0`` means one whole window."""
    wh, rows = axis_windows(height, tile, halo, fixed)
    ww, cols = axis_windows(width, tile, halo, fixed)
    windows = [Window(y0, x0, oy0, oy1, ox0, ox1) for y0, oy0, oy1 in rows for x0, ox0, ox1 in cols]
    return (wh, ww), windows


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, halo: int,
              batch: int = 4, scale: int = 1, fixed: bool = False) -> np.ndarray:
    """Apply a network to ``image`` through windows.

    Args:
        run: (N, C, h, w) float32 -> (N, C', s·h, s·w) float32, e.g. a backend's ``run`` (s = ``scale``: 1 for the
            size-preserving Y network, the frame graph's scale for a whole-frame graph).
        image: (C, H, W) float32.
        tile: at most this many input pixels per window side kept; 0 = the whole image at once.
        halo: context pixels per side, in input pixels (the Y network's D + 4; a frame graph's LR halo).
        batch: windows per call of ``run``.
        scale: output pixels per input pixel.
        fixed: windows of exactly tile + 2·halo (a server with fixed input dims) instead of equal tiles <= tile.

    Returns:
        (C', s·H, s·W) float32, equal to ``run(image[None])[0]`` up to float rounding.
    """
    _, height, width = image.shape
    (wh, ww), windows = plan(height, width, tile, halo, fixed)
    out = None
    s = scale
    ticket = cancel.current()           # a served request counts its windows (what is left undone if given up)
    if ticket is not None:
        ticket.planned += len(windows)
    for group in _batches(windows, max(1, batch)):
        stack = np.stack([image[:, w.y0:w.y0 + wh, w.x0:w.x0 + ww] for w in group]).astype(np.float32, copy=False)
        result = run(np.ascontiguousarray(stack))
        if ticket is not None:
            ticket.tiles_done += len(group)
        if out is None:
            out = np.empty((result.shape[1], s * height, s * width), dtype=np.float32)
        for w, tile_out in zip(group, result):
            out[:, s * w.oy0:s * w.oy1, s * w.ox0:s * w.ox1] = tile_out[:, s * (w.oy0 - w.y0):s * (w.oy1 - w.y0),
                                                                        s * (w.ox0 - w.x0):s * (w.ox1 - w.x0)]
    return out


def tiled_plane(run: Callable[[np.ndarray], np.ndarray], tile: int, halo: int,
                batch: int = 4, fixed: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` as a function of one plane: (H, W) float32 in [0, 1] -> (H, W) float32, through exact tiling."""

    def upscale(plane: np.ndarray) -> np.ndarray:
        return run_tiled(run, plane[None].astype(np.float32, copy=False), tile, halo, batch, fixed=fixed)[0]

    return upscale
