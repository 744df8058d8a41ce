"""``drcn-run --ray``: the same inputs processed by a Ray cluster (a local one on this machine without an address).

One long-lived actor per GPU (or per group of CPU threads) holds one backend, created once. Everything a job holds
goes into one queue handed to idle actors: batches of images, the segments of every video (``--segment``), and
whole short videos; each actor runs the same overlapped pipeline as a local run and writes its outputs itself,
atomically, where the driver planned them (the driver checks first that every worker sees those folders: shared
storage on a real cluster). The skip-existing rule is the driver's plan, so a killed run resumes; a video's parts go
to the work folder beside its output and the driver joins them. A worker that dies, or whose task runs past
``--task-timeout`` (a node that never comes back), costs that task only: a fresh worker does it again. Failures come
back by name and the driver prints progress and the summary.
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
TASK_TIMEOUT = 600.0    # default --task-timeout: a task running longer (and 5x the slowest finished) is redone


@dataclasses.dataclass(frozen=True)
class RayRequest:
    backend: BackendRequest
    scale: float
    address: str | None = None      # None: start a local Ray on this machine
    workers: int | None = None      # default: one per GPU in the cluster, else one per CPU / threads
    encode: EncodeOptions = EncodeOptions()
    frames_per_task: int = 4        # at most; fewer where there are few frames, so every worker gets some
    overwrite: bool = False         # a video's unfinished segments are started over
    task_timeout: float | None = TASK_TIMEOUT   # seconds a task may run before its worker counts as lost


class FrameWorker:
    """One Ray actor: one backend, created once, upscaling the batches of frames it is sent."""

    def __init__(self, request: BackendRequest, scale: float):
        from drcn.runtime.upscaler import Upscaler

        self.upscaler = Upscaler(request, scale)
        self.scale = scale

    def describe(self) -> str:
        import socket

        return f"{self.upscaler.description} on {socket.gethostname()} (pid {os.getpid()})"

    def sees(self, probe: str, token: str) -> bool | str:
        """True where ``probe`` holds ``token`` here (the driver's folder is shared); else this host's name."""
        import socket

        try:
            return Path(probe).read_text() == token or socket.gethostname()
        except OSError:
            return socket.gethostname()

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
        videos = [_VideoPlan.of(source, output, request) for source, output in _videos_of(job)]
        tasks = sum(len(v.pieces) if len(v.pieces) > 1 else 1 for v in videos) + (1 if job.frames else 0)
        if not job.frames:
            count = min(count, max(1, tasks))    # no more workers than there are things to do
        backend = request.backend
        if not backend.threads and "num_gpus" not in options:
            backend = dataclasses.replace(backend, threads=options["num_cpus"])
        worker_class = ray.remote(**options)(FrameWorker)
        workers = [worker_class.remote(backend, request.scale) for _ in range(count)]
        for description in _get(ray, [w.describe.remote() for w in workers]):
            log(f"worker: {description}")
        _check_shared(ray, workers, job, videos)
        start = time.perf_counter()
        pool = _Pool(ray, workers, lambda: worker_class.remote(backend, request.scale), request.task_timeout, log)
        summary = Summary()
        if job.frames:
            per_task = max(1, min(request.frames_per_task, -(-len(job.frames) // (2 * len(workers)))))
            items = [(f.name, str(f.source.resolve()), str(f.target.resolve())) for f in job.frames]
            progress = Progress("drcn-run (ray)", len(items))
            for i in range(0, len(items), per_task):
                pool.add(_Task(f"frames {items[i][0]}..", lambda actor, batch=items[i:i + per_task]:
                               actor.frames.remote(batch), lambda data: _frames_done(summary, progress, data)))
        else:
            progress = None
        runs = [video.start(ray, workers[0], pool, request, summary, log, alone=job.kind == "video")
                for video in videos]
        try:
            pool.run()
        finally:
            if progress is not None:
                progress.__exit__(None, None, None)
        for video, run in zip(videos, runs):
            if video.failed:
                summary.failed.append((video.source.name, video.failed))
                if run is not None:
                    run.src.container.close()
                    run.close()
            elif run is not None:
                summary.add(video.join(run))
        summary.failed.sort()
        summary.seconds = time.perf_counter() - start
        summary.workers = len(workers)
        return summary
    finally:
        if started:
            ray.shutdown()


def _videos_of(job: Job) -> list[tuple[Path, Path]]:
    if job.kind == "video":
        return [(job.source, job.output)]
    return list(job.videos)


def _frames_done(summary: Summary, progress: Progress, data: dict) -> None:
    summary.done += data["done"]
    summary.failed.extend(tuple(f) for f in data["failed"])
    summary.compute_seconds += data["compute_seconds"]
    summary.output_pixels += data["output_pixels"]
    progress.update(data["done"] + len(data["failed"]))


def _summary_of(data: dict) -> Summary:
    return Summary(**{k: v for k, v in data.items() if k not in ("failed", "messages")},
                   failed=[tuple(f) for f in data["failed"]])


@dataclasses.dataclass
class _VideoPlan:
    """One video of a Ray job: its segments (several: spread over the pool; one or none: one worker, whole)."""

    source: Path
    output: Path
    timeline: object
    pieces: list
    failed: str | None = None       # why the video was refused or failed (a folder's other videos go on)

    @classmethod
    def of(cls, source: Path, output: Path, request: RayRequest) -> "_VideoPlan":
        from drcn.runtime.media.timeline import scan
        from drcn.runtime.media.video_job import plan_segments

        timeline = scan(source)
        return cls(source.resolve(), output.resolve(), timeline, plan_segments(timeline, request.encode))

    def start(self, ray, first_worker, pool: "_Pool", request: RayRequest, summary: Summary, log, alone: bool):
        """Add this video's work to ``pool``; returns its :class:`SegmentedRun` (joined after the pool), or None for
        a video done whole by one worker. ``alone``: the job's only input, whose failure ends the run in one line;
        else a failure is this video's (counted by its name) and the folder's other inputs go on."""
        from drcn.runtime.media import colour
        from drcn.runtime.media.video import VideoSource
        from drcn.runtime.media.video_job import SegmentedRun

        name = self.source.name
        if len(self.pieces) < 2:
            def whole(data: dict) -> None:
                for message in data.pop("messages"):
                    log(message)
                summary.add(_summary_of(data))

            log(f"{name}: one worker takes it whole ({'--segment 0' if not request.encode.segment else 'one segment'})")
            pool.add(_Task(name, lambda actor: actor.video.remote(str(self.source), str(self.output), request.encode),
                           whole, None if alone else self._fail(pool, None), owner=self))
            return None
        src = VideoSource(self.source)
        try:
            size = colour.output_size(src.info.height, src.info.width, request.scale)
            settings = _get(ray, first_worker.settings.remote(request.encode, str(self.output)))
            run = SegmentedRun(src, self.output, request.encode, self.pieces, size, settings, log, request.overwrite)
        except BaseException:
            src.container.close()
            raise
        log(f"{name}: {len(run.pending)} segment(s) to do on {len(pool.idle)} worker(s)")
        if self.timeline.ordered:
            log(f"{name}: its frames cannot be found by timestamp ({self.timeline.ordered}): segments are cut by "
                "position, and each worker decodes from the start of the video to its segment")
        for piece in run.pending:
            pool.add(_Task(f"{name} segment {piece.index + 1}",
                           lambda actor, piece=piece: actor.segment.remote(str(self.source), dataclasses.asdict(piece),
                                                                           str(self.output), request.encode),
                           lambda data, piece=piece: run.finished(piece, _summary_of(data)),
                           self._fail(pool, run, raise_too=alone), owner=self))
        return run

    def _fail(self, pool: "_Pool", run, raise_too: bool = False) -> Callable[[DrcnError], None]:
        """What a failed task of this video does: a refusal (the resolution changes) leaves no part behind; the
        video's other tasks are dropped."""
        from drcn.runtime.media.video import ResolutionChange

        def failed(error: DrcnError) -> None:
            if run is not None and isinstance(error, ResolutionChange):
                run.work.remove()
            if raise_too:
                raise error
            self.failed = str(error)
            pool.drop(self)
        return failed

    def join(self, run) -> Summary:
        try:
            with run.refusing():
                return run.join(self.timeline)
        finally:
            run.src.container.close()
            run.close()


def _check_shared(ray, workers: list, job: Job, videos: list[_VideoPlan]) -> None:
    """Every worker must see the folders it writes into as the driver does (shared storage on a cluster): a probe
    file written here is read back by each worker before any work, else one line names the folder and the host."""
    import uuid

    folders = {job.output if job.kind == "folder" else job.output.parent} | {v.output.parent for v in videos}
    for folder in sorted(Path(f).resolve() for f in folders):
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        probe = folder / f".drcn-shared-{token}"
        probe.write_text(token)
        try:
            for seen in _get(ray, [w.sees.remote(str(probe), token) for w in workers]):
                if seen is not True:
                    raise DrcnError(f"{folder}: the Ray worker on {seen} does not see this folder as this machine "
                                    "does; outputs and video segments need storage every node shares (the same "
                                    "path on each)")
        finally:
            probe.unlink(missing_ok=True)


@dataclasses.dataclass
class _Task:
    name: str
    submit: Callable              # actor -> ObjectRef
    done: Callable[[dict], None]  # with the task's result
    failed: Callable[[DrcnError], None] | None = None    # None: a failure ends the run
    owner: object = None          # the video it belongs to (dropped together)


class _Pool:
    """Tasks handed to idle workers until every one is done: image batches, video segments and whole videos in one
    queue. A worker that dies, or whose task runs past the timeout (a node that never answers), is replaced and
    its task handed out again; three losses of one task stop the run (finished segments are kept)."""

    def __init__(self, ray, workers: list, new_worker: Callable, timeout: float | None,
                 log: Callable[[str], None]):
        self.ray, self.idle, self.new_worker, self.timeout, self.log = ray, list(workers), new_worker, timeout, log
        self.queue: list[_Task] = []
        self.dropped: set[int] = set()
        self.slowest = 0.0
        self.poll = 5.0         # seconds between looks at the running tasks' ages

    def add(self, task: _Task) -> None:
        self.queue.append(task)

    def drop(self, owner: object) -> None:
        """Forget the queued tasks of ``owner`` (a failed video); its running ones end unused."""
        self.queue = [task for task in self.queue if task.owner is not owner]
        self.dropped.add(id(owner))

    def limit(self) -> float | None:
        """How long a task may run: the timeout, or 5 times the slowest finished task where that is longer."""
        return None if self.timeout is None else max(self.timeout, 5 * self.slowest)

    def run(self) -> None:
        ray, in_flight, losses = self.ray, {}, {}
        while self.queue or in_flight:
            while self.queue and self.idle:
                task, actor = self.queue.pop(0), self.idle.pop()
                in_flight[task.submit(actor)] = (actor, task, time.monotonic())
            limit = self.limit()
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=None if limit is None else self.poll)
            now = time.monotonic()
            if not ready:
                late = [ref for ref, (_, _, began) in in_flight.items() if limit is not None and now - began > limit]
                for ref in late:
                    actor, task, _ = in_flight.pop(ref)
                    ray.kill(actor, no_restart=True)
                    self._lost(task, losses, f"gave no answer within {limit:.0f} s (--task-timeout)")
                continue
            actor, task, began = in_flight.pop(ready[0])
            try:
                data = ray.get(ready[0])
            except ray.exceptions.RayActorError:
                self._lost(task, losses, "died")
                continue
            except ray.exceptions.RayError as exc:
                self.idle.append(actor)
                error = _user_error(ray, exc)
                if task.failed is None:
                    raise error from None
                if id(task.owner) not in self.dropped:
                    task.failed(error)
                continue
            self.slowest = max(self.slowest, now - began)
            self.idle.append(actor)
            if id(task.owner) not in self.dropped:
                task.done(data)

    def _lost(self, task: _Task, losses: dict, how: str) -> None:
        name = task.name
        losses[name] = losses.get(name, 0) + 1
        if losses[name] > 2:
            raise DrcnError(f"{name}: its worker {how} {losses[name]} time(s); stopping (finished segments and "
                            "outputs are kept for the next run)")
        self.log(f"{name}: the worker {how}; a new worker does it again")
        self.queue.insert(0, task)
        self.idle.append(self.new_worker())
