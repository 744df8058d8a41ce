"""End-to-end ``drcn-run`` pipeline (decode, colour, tiling, encode) against compute alone, on a folder."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from drcn.errors import DrcnError
from drcn.images import list_images, read_image, write_image
from drcn.runtime.media import colour
from drcn.runtime.media.jobs import plan_job, save_frame
from drcn.runtime.pipeline import HostStages, run_frames
from drcn.runtime.tiling import tiled_plane
from drcn.samples import SAMPLE_NAMES, load_sample


def make_frames(folder: Path, count: int, width: int, height: int) -> Path:
    """``count`` RGB frames of width x height cut from the bundled sample photos (resized, MATLAB bicubic)."""
    from drcn import matlab

    folder.mkdir(parents=True, exist_ok=True)
    photos = [load_sample(n) for n in SAMPLE_NAMES]
    for i in range(count):
        photo = photos[i % len(photos)]
        if photo.ndim == 2:
            photo = np.dstack([photo] * 3)
        write_image(folder / f"frame_{i:04d}.png", matlab.imresize(photo, output_shape=(height, width)))
    return folder


def pipeline_efficiency(backend, frames_dir: Path, scale: float, tile: int, batch: int) -> dict:
    """Frames/s of the real pipeline vs frames/s of the network alone on the same prepared inputs."""
    infer = tiled_plane(backend.run, tile, backend.spec.halo, batch)

    files = list_images(frames_dir)
    prepared = [colour.prepare(read_image(f), scale) for f in files]
    infer(prepared[0].y)  # warm-up outside both timings
    start = time.perf_counter()
    for p in prepared:
        infer(p.y)
    compute_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        job = plan_job(frames_dir, out, scale, overwrite=True)
        summary = run_frames(job.frames, len(job.frames), HostStages(scale, infer), save_frame)
    if summary.failed:
        name, why = summary.failed[0]
        raise DrcnError(f"pipeline benchmark: frame {name} failed: {why}")
    compute_fps, pipeline_fps = len(files) / compute_s, summary.fps
    return {"frames": len(files), "compute_only_fps": compute_fps, "pipeline_fps": pipeline_fps,
            "efficiency": pipeline_fps / compute_fps, "pipeline_s": summary.seconds, "compute_only_s": compute_s}


def ray_pipeline(request, frames_dir: Path, scale: float, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Frames/s of ``drcn-run --ray`` (a local Ray on this machine) with each number of ``workers``, for the same
    frames as :func:`pipeline_efficiency`; timed from the moment the workers hold their backends (Ray's start-up
    and the backends' creation are reported apart, as ``startup_s``)."""
    import time as clock

    from drcn.runtime.ray_run import RayRequest, run_on_ray

    results = {}
    for count in workers:
        with tempfile.TemporaryDirectory() as out:
            job = plan_job(frames_dir, out, scale, overwrite=True)
            start = clock.perf_counter()
            summary = run_on_ray(job, RayRequest(request, scale,
                                                 workers=count))
            total = clock.perf_counter() - start
        if summary.failed:
            name, why = summary.failed[0]
            raise DrcnError(f"ray pipeline benchmark: frame {name} failed: {why}")
        results[str(count)] = {"fps": summary.fps, "seconds": summary.seconds, "startup_s": total - summary.seconds}
    return results
