"""``drcn-bench paths``: frames/s of drcn-run's two paths on the same frames and backend, and of the network
alone on the device path's tiles: whether the host or the backend sets the speed.

Frames are decoded once (in memory, so file I/O is left out) and run through the same overlapped pipeline as
``drcn-run`` (``run_frames``): the host path (numpy colour and MATLAB bicubic, the Y network on the backend) and
the device path (the whole frame on the backend). ``network_fps`` runs only the backend on the device path's
prepared inputs: the ceiling once the host's work is hidden.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from drcn.benchmarks.environment import environment
from drcn.errors import DrcnError
from drcn.runtime.media.jobs import Frame
from drcn.runtime.pipeline import run_frames
from drcn.runtime.upscaler import BackendRequest, Upscaler


@dataclasses.dataclass(frozen=True)
class PathsRequest:
    backend: BackendRequest          # path is set per measurement
    frames: int = 8
    output_hw: tuple[int, int] = (1080, 1920)
    scale: int = 2


def _frames(count: int, height: int, width: int) -> list[np.ndarray]:
    import cv2

    from drcn.samples import SAMPLE_NAMES, load_sample

    photos = [photo for photo in map(load_sample, SAMPLE_NAMES) if photo.ndim == 3]
    return [cv2.resize(photos[i % len(photos)], (width, height), interpolation=cv2.INTER_AREA) for i in range(count)]


def measure_paths(request: PathsRequest, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    height, width = request.output_hw
    if height % request.scale or width % request.scale:
        raise DrcnError(f"--size {width}x{height}: not a multiple of x{request.scale}")
    images = _frames(request.frames, height // request.scale, width // request.scale)
    records = []
    for path in ("host", "device"):
        upscaler = Upscaler(dataclasses.replace(request.backend, path=path), request.scale, log)
        try:
            log(f"{path} path: {upscaler.description}")
            upscaler.upscale_image(images[0])   # warm-up: compiles, engine builds, CUDA kernels
            frames = [Frame(f"frame {i}", lambda image=image: image) for i, image in enumerate(images)]
            summary = run_frames(frames, len(frames), upscaler, lambda frame, image: None, show_progress=False)
            if summary.failed:
                raise DrcnError(f"{path} path: {summary.failed[0][0]}: {summary.failed[0][1]}")
            record = {"path": path, "frame": f"{width}x{height}", "frames": summary.done, "fps": summary.fps,
                      "network_busy": summary.compute_seconds / max(summary.seconds, 1e-9),
                      "description": upscaler.description, "tile": request.backend.tile, "env": environment()}
            if path == "device":
                prepared = [upscaler.prepare(image) for image in images]
                start = time.perf_counter()
                for item in prepared:
                    upscaler.infer(item)
                record["network_fps"] = len(prepared) / (time.perf_counter() - start)
            records.append(record)
        finally:
            upscaler.close()
    return records


def paths_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["path", "frame", "frames/s", "network busy", "network alone frames/s"]
    rows = [[r["path"], r["frame"], f"{r['fps']:.2f}", f"{100 * r['network_busy']:.0f}%",
             f"{r['network_fps']:.2f}" if "network_fps" in r else "-"] for r in records]
    return headers, rows
