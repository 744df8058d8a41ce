"""Latency of a backend: per tile (the model's compute), per frame (tiled), and the tiling overhead.

Timing: ``warmup`` untimed calls, then ``repeat`` timed calls with a monotonic clock; every backend returns
host arrays, so each call includes the device synchronisation and copies (what a caller waits for). Medians
and 90th percentiles are reported; compare backends by ratios measured in ONE run on a noisy machine.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from drcn.testinputs import smooth_test_input
from drcn.runtime.tiling import plan, run_tiled


@dataclasses.dataclass
class Timing:
    median_s: float
    p90_s: float
    samples: int


def time_call(fn: Callable[[], object], repeat: int, warmup: int) -> Timing:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(float(np.median(samples)), float(np.percentile(samples, 90)), len(samples))


def tile_latency(run: Callable[[np.ndarray], np.ndarray], tile: int, halo: int, batch: int, repeat: int,
                 warmup: int) -> dict:
    """One call on ``batch`` windows of (tile + 2·halo)²; per-tile figures divide by ``batch``."""
    side = tile + 2 * halo
    x = smooth_test_input((batch, 1, side, side))
    timing = time_call(lambda: run(x), repeat, warmup)
    return {"median_ms": 1e3 * timing.median_s / batch, "p90_ms": 1e3 * timing.p90_s / batch,
            "call_median_ms": 1e3 * timing.median_s, "repeat": timing.samples,
            # useful output pixels per second: the halo is recomputed context, not output
            "mpix_per_s": batch * tile * tile / timing.median_s / 1e6}


def frame_latency(run: Callable[[np.ndarray], np.ndarray], height: int, width: int, tile: int, halo: int,
                  batch: int, repeat: int, warmup: int, fixed: bool = False) -> dict:
    """A whole (height, width) network input (= output frame) through :func:`run_tiled` (``fixed``: windows of
    exactly tile + 2·halo, as before tiles were evened out)."""
    y = smooth_test_input((1, 1, height, width))[0]
    timing = time_call(lambda: run_tiled(run, y, tile, halo, batch, fixed=fixed), repeat, warmup)
    (wh, ww), windows = plan(height, width, tile, halo, fixed)
    return {"frame": f"{width}x{height}", "median_ms": 1e3 * timing.median_s, "p90_ms": 1e3 * timing.p90_s,
            "mpix_per_s": height * width / timing.median_s / 1e6, "windows": len(windows),
            "window_area_ratio": len(windows) * wh * ww / (height * width), "repeat": timing.samples}


def tiling_overhead(run: Callable[[np.ndarray], np.ndarray], height: int, width: int, tile: int, halo: int,
                    batch: int, repeat: int, warmup: int) -> dict:
    """Tiled frame time over whole-frame time, against the theoretical ratio of computed to output area; and the
    same with fixed windows of tile + 2·halo, so the gain of equal tiles is measured in the same run."""
    tiled = frame_latency(run, height, width, tile, halo, batch, repeat, warmup)
    fixed = frame_latency(run, height, width, tile, halo, batch, repeat, warmup, fixed=True)
    whole = frame_latency(run, height, width, 0, halo, 1, repeat, warmup)
    measured = tiled["median_ms"] / whole["median_ms"]
    theoretical = tiled["window_area_ratio"]
    return {"frame": f"{width}x{height}", "tile": tile, "tiled_ms": tiled["median_ms"],
            "whole_ms": whole["median_ms"], "measured_ratio": measured, "theoretical_ratio": theoretical,
            "tile_area_ratio": (tile + 2 * halo) ** 2 / tile ** 2,
            "relative_difference": measured / theoretical - 1.0,
            "fixed_ms": fixed["median_ms"], "fixed_theoretical_ratio": fixed["window_area_ratio"],
            "equal_tiles_speedup": fixed["median_ms"] / tiled["median_ms"]}
