"""``drcn-run --ray``: the same inputs processed by a Ray cluster (a local one on this machine without an address).

One long-lived actor per GPU (or per group of CPU threads) holds one backend, created once; frames go to the
actors in batches through Ray's ActorPool, each actor upscales its batch with the same overlapped pipeline as a
local run and writes the outputs itself, atomically, where the driver planned them (shared storage on a real
cluster). The skip-existing rule is the driver's plan, so a killed run resumes; failures come back by frame name
and the driver prints progress and the summary. A video goes to one actor whole (exact: timestamps and every
other stream kept, as in a local run); a video of several segments (``--segment``) spreads its segments over every
worker instead, each writing its part to the work folder beside the output (shared storage), and the driver joins
them: a worker that dies mid-segment costs that segment only, done again by a fresh worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Callable

from drcn.errors import DrcnError
from drcn.optional import require
from drcn.progress import Progress
from drcn.runtime.media.jobs import Job
from drcn.runtime.pipeline import Summary
from drcn.runtime.upscaler import BackendRequest
from drcn.runtime.media.video import EncodeOptions

INSTALL = "pip install 'drcn[ray]'"


@dataclasses.dataclass(frozen=True)
class RayRequest:
    backend: BackendRequest
    scale: float
    address: str | None = None      # None: start a local Ray on this machine
    workers: int | None = None      # default: one per GPU in the cluster, else one per CPU / threads
    encode: EncodeOptions = EncodeOptions()
    frames_per_task: int = 4        # at most; fewer where there are few frames, so every worker gets some
    overwrite: bool = False         # a video's unfinished segments are started over


class FrameWorker:
    """One Ray actor: one backend, created once, upscaling the batches of frames it is sent."""

    def __init__(self, request: BackendRequest, scale: float):
        from drcn.runtime.upscaler import Upscaler

        self.upscaler = Upscaler(request, scale)
        self.scale = scale

    def describe(self) -> str:
        import socket

        return f"{self.upscaler.description} on {socket.gethostname()} (pid {os.getpid()})"

    def frames(self, items: list[tuple[str, str, str]]) -> dict:
        """Upscale ``(name, source file, target file)`` items; returns the batch's summary as plain data."""
        from drcn.images import read_image
        from drcn.runtime.media.jobs import Frame, save_frame
        from drcn.runtime.pipeline import run_frames

        frames = [Frame(name, lambda s=source: read_image(s), Path(target)) for name, source, target in items]
        summary = run_frames(frames, len(frames), self.upscaler, save_frame, show_progress=False)
        return dataclasses.asdict(summary)

    def settings(self, encode: EncodeOptions, output: str) -> dict:
        """What this worker's parts depend on (the work folder's manifest)."""
        from drcn.runtime.media.video_job import pixel_settings

        return pixel_settings(self.upscaler, self.scale, encode, Path(output))

    def segment(self, source: str, piece: dict, output: str, encode: EncodeOptions) -> dict:
        """One segment of a video into its part in the work folder beside ``output``; its summary as plain data."""
        from drcn.runtime.media.segments import Segment, WorkFolder
        from drcn.runtime.media.video_job import upscale_segment

        segment, work = Segment(**piece), WorkFolder(Path(output))
        work.sweep(segment)
        return dataclasses.asdict(upscale_segment(Path(source), segment, work, self.scale, self.upscaler, encode))

    def video(self, source: str, output: str, encode: EncodeOptions) -> dict:
        from drcn.runtime.media.video_job import upscale_video

        messages: list[str] = []
        summary = upscale_video(Path(source), Path(output), self.scale, self.upscaler, encode,
                                log=messages.append)
        return {**dataclasses.asdict(summary), "messages": messages}


def _user_error(ray, exc: BaseException) -> DrcnError:
    """A Ray failure as one line: the DrcnError an actor raised, else the failure's last line."""
    cause = getattr(exc, "cause", None)
    while cause is not None and isinstance(cause, ray.exceptions.RayError):
        cause = getattr(cause, "cause", None)
    if isinstance(cause, DrcnError):
        try:
            return type(cause)(str(cause))     # the same kind: a refusal (e.g. ResolutionChange) stays one
        except TypeError:                      # a kind made from other arguments
            return DrcnError(str(cause))
    return DrcnError(f"a Ray worker failed: {str(exc).strip().splitlines()[-1]}")


def _get(ray, refs):
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as exc:
        raise _user_error(ray, exc) from None


# The HTTP/2 connection preface and an empty SETTINGS frame: every gRPC server (Ray's GCS and its client server
# alike) answers it at once with a SETTINGS frame of its own.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
PROBE_SECONDS = 5.0


def probe_address(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail in one line within ``timeout`` seconds unless a gRPC (Ray) server answers at ``host:port``, naming what
    happened: refused, timed out, or answered by something that is not Ray. Ray itself would retry for minutes."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and the like: Ray resolves those itself
    host = host.strip("[]")
    try:
        connection = socket.create_connection((host, int(port)), timeout=timeout)
    except socket.timeout:
        raise DrcnError(f"--ray {address}: timed out after {timeout:g} s connecting (nothing answers there)") from None
    except OSError as exc:
        raise DrcnError(f"--ray {address}: nothing answers there ({exc.strerror or exc})") from None
    try:
        connection.settimeout(timeout)
        connection.sendall(_HTTP2_HELLO)
        reply = connection.recv(9)
    except socket.timeout:
        raise DrcnError(f"--ray {address}: something accepts connections there but did not answer within "
                        f"{timeout:g} s; it is not a Ray cluster (a Ray head answers at once)") from None
    except OSError as exc:
        raise DrcnError(f"--ray {address}: the connection failed ({exc.strerror or exc}); is it a Ray head?") from None
    finally:
        connection.close()
    if len(reply) < 4 or reply[3] != 4:  # byte 3 of a frame header is its type; 4 = SETTINGS
        seen = reply[:16].decode("latin-1").strip() or "closed the connection"
        raise DrcnError(f"--ray {address}: what answers there is not Ray (no gRPC: it said {seen!r})")


def ray_address_or_input(value: str | None, given_input: str | None) -> tuple[str | None, str | None, str | None]:
    """``--ray`` takes an optional address, so ``drcn-run --ray in -o out`` reads the folder ``in`` as one. An
    address never names an existing file or folder: such a value is the input (and a local Ray runs it).

    Returns (address or None for a local Ray, the input, a note to print or None)."""
    if value and given_input is None and Path(value).exists():
        return None, value, f"--ray: '{value}' is an existing file or folder, so it is the input (local Ray)"
    return value or None, given_input, None


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local one on the loopback address; True if started here."""
    try:
        if address:
            probe_address(address)
            # The pixel limit travels to workers on other machines (they read it where they decode).
            from drcn.limits import ENV, max_pixels

            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     runtime_env={"env_vars": {ENV: str(max_pixels())}})
            return False
        from drcn.runtime.local_ray import start_local

        start_local(ray, configure_logging=True)
        return True
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise DrcnError(f"--ray {address or '(local)'}: cannot connect to a Ray cluster "
                        f"({str(exc).strip().splitlines()[0]})") from None


def _actor_options(ray, request: RayRequest) -> tuple[int, dict]:
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    b = request.backend
    on_gpu = (b.backend == "tensorrt" or (b.backend == "torch" and b.device != "cpu")
              or (b.backend == "onnxruntime" and b.provider in ("cuda", "tensorrt")))
    if on_gpu and gpus:
        return request.workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    threads = request.backend.threads or 1
    return request.workers or max(1, cpus // threads), {"num_cpus": threads}


def run_on_ray(job: Job, request: RayRequest, log: Callable[[str], None] = lambda _: None) -> Summary:
    """Process ``job`` on Ray; the summary counts every frame the workers finished or failed, by name."""
    if not request.address:
        from drcn.runtime.local_ray import confine_to_loopback

        confine_to_loopback()       # before Ray is imported: its setting is read then
    ray = require("ray", "drcn-run --ray", INSTALL)
    started = _connect(ray, request.address)
    try:
        count, options = _actor_options(ray, request)
        pieces, timeline = [], None
        if job.kind == "video":
            from drcn.runtime.media.timeline import scan
            from drcn.runtime.media.video_job import plan_segments

            timeline = scan(job.source)
            pieces = plan_segments(timeline, request.encode)
            if len(pieces) < 2:
                count = 1  # one segment: one worker decodes and encodes the stream in order
            count = min(count, max(1, len(pieces)))
        backend = request.backend
        if not backend.threads and "num_gpus" not in options:
            backend = dataclasses.replace(backend, threads=options["num_cpus"])
        worker_class = ray.remote(**options)(FrameWorker)
        workers = [worker_class.remote(backend, request.scale) for _ in range(count)]
        for description in _get(ray, [w.describe.remote() for w in workers]):
            log(f"worker: {description}")
        start = time.perf_counter()
        if len(pieces) > 1:
            summary = _run_segments(ray, workers, lambda: worker_class.remote(backend, request.scale), job, pieces,
                                    timeline, request, log)
        elif job.kind == "video":
            log(f"{job.source.name}: one video, one worker")
            data = _get(ray, workers[0].video.remote(str(job.source.resolve()), str(job.output.resolve()),
                                                       request.encode))
            for message in data.pop("messages"):
                log(message)
            summary = Summary(**data)
        else:
            per_task = max(1, min(request.frames_per_task, -(-len(job.frames) // (2 * len(workers)))))
            summary = _run_frames(ray, workers, job, per_task)
        summary.seconds = time.perf_counter() - start
        summary.workers = count
        return summary
    finally:
        if started:
            ray.shutdown()


def _run_segments(ray, workers: list, new_worker: Callable, job: Job, pieces: list, timeline, request: RayRequest,
                  log: Callable[[str], None]) -> Summary:
    """A video's segments on every worker; the driver keeps the work folder's plan and joins the parts."""
    from drcn.runtime.media import colour
    from drcn.runtime.media.video import VideoSource
    from drcn.runtime.media.video_job import SegmentedRun

    source, output = job.source.resolve(), job.output.resolve()
    src = VideoSource(source)
    try:
        size = colour.output_size(src.info.height, src.info.width, request.scale)
        settings = _get(ray, workers[0].settings.remote(request.encode, str(output)))
        run = SegmentedRun(src, output, request.encode, pieces, size, settings, log, request.overwrite)
        log(f"{job.source.name}: {len(run.pending)} segment(s) to do on {len(workers)} worker(s)")
        if timeline.ordered:
            log(f"{job.source.name}: its frames cannot be found by timestamp ({timeline.ordered}): segments are cut "
                "by position, and each worker decodes from the start of the video to its segment")
        with run.refusing():
            _spread(ray, run, workers, new_worker, source, output, request, log)
        return run.join(timeline)
    finally:
        src.container.close()


def _spread(ray, run, workers: list, new_worker: Callable, source: Path, output: Path, request: RayRequest,
            log: Callable[[str], None]) -> None:
    """Hand the pending segments to idle workers until every one is done; a worker that dies is replaced and its
    segment handed out again (three deaths on one segment stop the run)."""
    queue, idle, in_flight, deaths = list(run.pending), list(workers), {}, {}
    while queue or in_flight:
        while queue and idle:
            piece, actor = queue.pop(0), idle.pop()
            ref = actor.segment.remote(str(source), dataclasses.asdict(piece), str(output), request.encode)
            in_flight[ref] = (actor, piece)
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        actor, piece = in_flight.pop(ready[0])
        try:
            data = ray.get(ready[0])
        except ray.exceptions.RayActorError:
            deaths[piece.index] = deaths.get(piece.index, 0) + 1
            if deaths[piece.index] > 2:
                raise DrcnError(f"{source.name}: segment {piece.index} lost its worker three times; "
                                "stopping (the finished segments are kept for the next run)") from None
            log(f"{source.name}: the worker of segment {piece.index + 1} died; a new worker does it again")
            queue.insert(0, piece)
            idle.append(new_worker())
            continue
        except ray.exceptions.RayError as exc:
            raise _user_error(ray, exc) from None
        run.finished(piece, Summary(**{k: v for k, v in data.items() if k != "failed"},
                                    failed=[tuple(f) for f in data["failed"]]))
        idle.append(actor)


def _run_frames(ray, workers, job: Job, per_task: int) -> Summary:
    from ray.util import ActorPool

    items = [(f.name, str(f.source.resolve()), str(f.target.resolve())) for f in job.frames]
    batches = [items[i:i + per_task] for i in range(0, len(items), per_task)]
    summary = Summary()
    pool = ActorPool(workers)
    with Progress("drcn-run (ray)", len(items)) as progress:
        results = pool.map_unordered(lambda actor, batch: actor.frames.remote(batch), batches)
        while True:
            try:
                data = next(results)
            except StopIteration:
                break
            except ray.exceptions.RayError as exc:
                raise _user_error(ray, exc) from None
            summary.done += data["done"]
            summary.failed.extend(tuple(f) for f in data["failed"])
            summary.compute_seconds += data["compute_seconds"]
            summary.output_pixels += data["output_pixels"]
            progress.update(data["done"] + len(data["failed"]))
    summary.failed.sort()
    return summary
