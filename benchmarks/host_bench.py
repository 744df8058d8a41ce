"""``drcn-bench latency --host WxH``: what the host does per frame between decoding and encoding, without the
network: the numbers that bound frames/s once the network runs on a fast GPU.

- host path: ``colour.prepare`` (MATLAB rgb2ycbcr, bicubic enlargement of Y, Cb, Cr in float64, rounding), the Y
  plane's windows cut and put back, ``colour.finish`` (ycbcr2rgb, rounding);
- device path: uint8 -> float32 planes, the LR windows cut and the HR tiles put back, float32 -> uint8;
- ``io_ms``: reading the low-resolution PNG and writing the output PNG of the same frame (what drcn-run's folder
  runs also pay, in other threads).

The network call is replaced by a function that returns an array of the right shape, so only host work is timed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from drcn import frame
from drcn.benchmarks.environment import environment
from drcn.benchmarks.latency import time_call
from drcn.images import read_image, write_image
from drcn.runtime.media import colour
from drcn.runtime.tiling import run_tiled, tiled_plane


def _photo(height: int, width: int) -> np.ndarray:
    """A real photo at (height, width), uint8 RGB: PNG costs depend on content."""
    import cv2

    from drcn.samples import load_sample

    return cv2.resize(load_sample("astronaut"), (width, height), interpolation=cv2.INTER_AREA)


def _echo(batch: np.ndarray) -> np.ndarray:
    return batch


def measure_host(output_hw: tuple[int, int] = (1080, 1920), scale: int = 2, tile: int = 256, halo: int = 13,
                 batch: int = 4, repeat: int = 3) -> list[dict]:
    """Records ``{"path", "frame", "host_ms", "io_ms", ...}`` for the host and the device path (median ms)."""
    height, width = output_hw
    lr = _photo(height // scale, width // scale)
    lr_halo = frame.lr_halo(halo, scale)

    y_tiles = tiled_plane(_echo, tile, halo, batch)

    def host_path():
        p = colour.prepare(lr, scale)
        colour.finish(p, y_tiles(p.y))

    out_shape = (3, height, width)
    result = np.random.default_rng(0).random((1, *out_shape), dtype=np.float32)
    lr_tile = frame.input_tile(tile, scale)

    def device_run(windows: np.ndarray) -> np.ndarray:   # the right shape, the network's cost left out
        n, c, h, w = windows.shape
        return np.broadcast_to(result[:1, :c, :h * scale, :w * scale], (n, c, h * scale, w * scale))

    def device_path():
        x = frame.to_input(lr)[0]
        frame.from_output(run_tiled(device_run, x, lr_tile, lr_halo, batch, scale)[None])

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "lr.png", Path(tmp) / "out.png"
        write_image(source, lr)
        big = frame.from_output(result)

        def io():
            read_image(source)
            write_image(target, big)

        io_ms = 1e3 * time_call(io, repeat, 1).median_s
    env = environment()
    records = []
    for name, work in (("host", host_path), ("device", device_path)):
        timing = time_call(work, repeat, 1)
        records.append({"path": name, "frame": f"{width}x{height}", "scale": scale, "tile": tile,
                        "host_ms": 1e3 * timing.median_s, "host_p90_ms": 1e3 * timing.p90_s, "io_ms": io_ms,
                        "repeat": timing.samples, "env": env})
    return records


def host_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    base = next(r["host_ms"] for r in records if r["path"] == "host")
    headers = ["path", "frame", "host ms/frame (median)", "p90", "vs host path", "PNG read+write ms"]
    rows = [[r["path"], r["frame"], f"{r['host_ms']:.1f}", f"{r['host_p90_ms']:.1f}",
             f"{base / r['host_ms']:.1f}x less" if r["path"] != "host" else "1.0x", f"{r['io_ms']:.1f}"]
            for r in records]
    return headers, rows
