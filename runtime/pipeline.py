"""Overlapped frame processing: decode + preparation in worker threads, inference in the calling thread (or, for
a backend that keeps several requests in flight, in as many threads, one frame each), finishing + encode + write
in writer threads (an :class:`FrameStages` says what each stage does: the host or the device path of
:class:`drcn.runtime.upscaler.Upscaler`). Heavy numpy, OpenCV and inference libraries release the GIL, so the
stages really run side by side. A frame that fails is reported by name; the rest carry on."""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from drcn.errors import DrcnError
from drcn.progress import Progress
from drcn.runtime.media import colour
from drcn.runtime.media.jobs import Frame


class FrameStages(Protocol):
    """How one decoded frame becomes an output frame, in three stages that may run on different threads.

    ``in_flight`` (optional attribute, default 1): how many frames ``infer`` may take at once from different
    threads. 1 keeps inference on the calling thread (CUDA contexts, PyTorch); more is for a thread-safe backend
    whose requests in flight would otherwise idle at the end of each frame (OpenVINO's throughput mode)."""

    def prepare(self, image: np.ndarray, source: str = "image") -> object:
        """(H, W[, C]) uint8/uint16 -> what ``infer`` takes (any thread); ``source`` names the frame in errors."""

    def infer(self, prepared: object) -> np.ndarray:
        """The network (the calling thread only, unless ``in_flight`` > 1)."""

    def finish(self, prepared: object, result: np.ndarray) -> np.ndarray:
        """-> the output image, same kind as the input (any thread)."""


class HostStages:
    """The host path around a Y-plane function: colour and bicubic in numpy (:mod:`drcn.runtime.media.colour`)."""

    def __init__(self, scale: float, infer_y: Callable[[np.ndarray], np.ndarray]):
        self.scale, self.infer_y = scale, infer_y

    def prepare(self, image: np.ndarray, source: str = "image") -> colour.Prepared:
        return colour.prepare(image, self.scale)

    def infer(self, prepared: colour.Prepared) -> np.ndarray:
        return self.infer_y(prepared.y)

    def finish(self, prepared: colour.Prepared, result: np.ndarray) -> np.ndarray:
        return colour.finish(prepared, result)


@dataclasses.dataclass
class Summary:
    done: int = 0
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    compute_seconds: float = 0.0      # time some frame was inside the network (summed over Ray workers)
    output_pixels: int = 0
    workers: int = 1                  # processes that ran the network side by side (Ray)
    lost: list[str] = dataclasses.field(default_factory=list)   # input the file declares that did not decode

    @property
    def fps(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: "Summary") -> None:
        """Count ``other`` (a run that followed this one) in this one."""
        self.done += other.done
        self.failed.extend(other.failed)
        self.seconds += other.seconds
        self.compute_seconds += other.compute_seconds
        self.output_pixels += other.output_pixels
        self.lost.extend(other.lost)


class prefetch:
    """Iterate ``items`` in a background thread (e.g. video decoding), ``depth`` items ahead. Use it as a context
    (or call :meth:`close`): leaving stops the producer and waits for it, so that what it reads from (a demuxer, a
    decoder) can be closed after without a thread still inside it (closing an FFmpeg container under a decoding
    thread crashed the process)."""

    def __init__(self, items: Iterable[Frame], depth: int):
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._end, self._stop = object(), threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[Frame]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # re-raised in the consumer
            self._put(exc)
        self._put(self._end)

    def __iter__(self) -> Iterator[Frame]:
        while (item := self._buffer.get()) is not self._end:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "prefetch":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DrcnError) else f"{type(exc).__name__}: {exc}"


class _Unprepared(Exception):
    """A frame that could not be read or prepared (reported by name; the run goes on)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class _CallingThread:
    """Runs each submitted call at once on the calling thread: inference with ``in_flight == 1`` stays there (CUDA
    contexts, PyTorch). A frame's own failure comes back in its future; a backend failure is raised at once."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except _Unprepared as failed:
            future.set_exception(failed)
        return future

    def shutdown(self, **_) -> None:
        pass


class _BusyClock:
    """Seconds during which at least one frame was in inference (overlapping frames count once)."""

    def __init__(self):
        self.seconds, self._active, self._since, self._lock = 0.0, 0, 0.0, threading.Lock()

    def __enter__(self):
        with self._lock:
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1

    def __exit__(self, *_):
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self.seconds += time.perf_counter() - self._since


def run_frames(frames: Iterable[Frame], total: int, stages: FrameStages,
               write: Callable[[Frame, np.ndarray], None], ordered_writes: bool = False, workers: int = 2,
               depth: int = 4, label: str = "drcn-run", show_progress: bool = True) -> Summary:
    """Upscale every frame and hand the result to ``write``.

    Args:
        stages: what turns a decoded frame into an output frame (an Upscaler, or :class:`HostStages`).
        write: called with each finished image (in input order when ``ordered_writes``, e.g. for video).
    """
    summary = Summary()
    start = time.perf_counter()
    in_flight = max(1, int(getattr(stages, "in_flight", 1)))
    prep_pool = ThreadPoolExecutor(workers, thread_name_prefix="drcn-prep")
    write_pool = ThreadPoolExecutor(1 if ordered_writes else workers, thread_name_prefix="drcn-write")
    infer_pool = (ThreadPoolExecutor(in_flight, thread_name_prefix="drcn-infer") if in_flight > 1
                  else _CallingThread())
    busy = _BusyClock()
    reads: collections.deque[tuple[Frame, Future]] = collections.deque()
    inferring: collections.deque[tuple[Frame, Future]] = collections.deque()
    writes: collections.deque[tuple[Frame, Future]] = collections.deque()

    def load_and_prepare(frame: Frame) -> object:
        return stages.prepare(frame.load(), frame.name)

    def infer(prepared_future: Future) -> tuple[object, np.ndarray]:
        try:
            prepared = prepared_future.result()
        except Exception as exc:
            raise _Unprepared(exc) from None
        with busy:
            return prepared, stages.infer(prepared)  # a backend failure is not about one frame: it stops the run

    def finish_and_write(frame: Frame, prepared: object, result: np.ndarray) -> int:
        image = stages.finish(prepared, result)
        write(frame, image)
        return image.shape[0] * image.shape[1]

    def drain_writes(keep: int, progress: Progress) -> None:
        while len(writes) > keep:
            frame, future = writes.popleft()
            try:
                summary.output_pixels += future.result()
                summary.done += 1
            except Exception as exc:
                summary.failed.append((frame.name, _message(exc)))
            progress.update(extra=frame.name)

    def collect(progress: Progress, keep: int) -> None:
        """Hand inferred frames to the writers in input order (a video's writer needs it), waiting for the oldest
        while more than ``keep`` are in inference."""
        while inferring and (len(inferring) > keep or inferring[0][1].done()):
            frame, future = inferring.popleft()
            try:
                prepared, result = future.result()
            except _Unprepared as failed:  # this frame could not be read or prepared: report it, go on
                summary.failed.append((frame.name, _message(failed.cause)))
                progress.update(extra=frame.name)
                continue
            writes.append((frame, write_pool.submit(finish_and_write, frame, prepared, result)))

    def infer_next(progress: Progress) -> None:
        frame, future = reads.popleft()
        collect(progress, in_flight - 1)   # room for one more frame in inference
        inferring.append((frame, infer_pool.submit(infer, future)))
        collect(progress, in_flight)

    try:
        with Progress(label, total, enabled=show_progress) as progress:
            for frame in frames:
                reads.append((frame, prep_pool.submit(load_and_prepare, frame)))
                if len(reads) >= depth:
                    infer_next(progress)
                drain_writes(depth, progress)
            while reads:
                infer_next(progress)
                drain_writes(depth, progress)
            collect(progress, 0)
            drain_writes(0, progress)
    finally:
        infer_pool.shutdown(wait=True, cancel_futures=True)
        prep_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True)
    summary.compute_seconds = busy.seconds
    summary.seconds = time.perf_counter() - start
    return summary
