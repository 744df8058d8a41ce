"""Windows of concurrent requests share one backend call.

A served replica answers several requests at once (one thread each); each cuts its image into windows and calls the
backend. :class:`WindowBatcher` stands in front of the backend's ``run``: calls from any thread are queued, and one
worker thread joins windows of the same shape from different calls into one backend batch (up to ``max_batch``),
then hands each caller its own rows back. The backend is only ever called from that one thread, so a backend that is
not thread-safe (OpenVINO's latency mode, CUDA contexts) is safe behind it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np

# The cancel flag of the request a thread works for (set by the server per request): a request whose client went
# away or whose deadline passed stops at its next backend call instead of computing the rest of its image.
CANCELLED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("drcn_cancelled", default=None)


class Cancelled(Exception):
    """The request this work was for was given up (client gone, deadline passed)."""


@dataclasses.dataclass
class _Call:
    windows: np.ndarray      # (n, C, h, w) float32
    done: Future


class WindowBatcher:
    """``run``-compatible callable: (n, C, h, w) float32 -> the backend's output for those rows, from any thread.

    Args:
        run: the backend's ``run`` (called from one worker thread only).
        max_batch: windows per backend call at most (a single call larger than this runs alone, as it is).
        wait_s: how long the worker waits for more calls of the same shape once it has one.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int, wait_s: float = 0.003):
        self._run, self.max_batch, self.wait_s = run, max(1, int(max_batch)), wait_s
        self._queue: queue.Queue[_Call | None] = queue.Queue()
        self._held: list[_Call] = []          # taken from the queue, of another shape than the batch being built
        self.backend_calls = 0                # what batching saves: compare with the callers' calls
        self.calls = 0
        self.cancelled = 0                    # calls refused because their request was given up
        self._worker = threading.Thread(target=self._serve, name="drcn-batcher", daemon=True)
        self._worker.start()

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        flag = CANCELLED.get()
        if flag is not None and flag.is_set():
            self.cancelled += 1
            raise Cancelled("the request was given up")
        call = _Call(np.ascontiguousarray(windows, dtype=np.float32), Future())
        self.calls += 1
        self._queue.put(call)
        return call.done.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _next(self, timeout: float | None) -> _Call | None:
        if self._held:
            return self._held.pop(0)
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            raise TimeoutError from None

    def _serve(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            group, count, shape = [first], len(first.windows), first.windows.shape[1:]
            deadline = time.monotonic() + self.wait_s
            stop = False
            while count < self.max_batch:
                try:
                    call = self._next(deadline - time.monotonic())
                except TimeoutError:
                    break
                if call is None:
                    stop = True
                    break
                if call.windows.shape[1:] == shape and count + len(call.windows) <= self.max_batch:
                    group.append(call)
                    count += len(call.windows)
                else:
                    self._held.append(call)
                    break
            self._run_group(group)
            if stop:
                return

    def _run_group(self, group: list[_Call]) -> None:
        try:
            out = self._run(np.concatenate([c.windows for c in group]) if len(group) > 1 else group[0].windows)
            self.backend_calls += 1
        except BaseException as exc:  # every caller of this batch gets the backend's error
            for call in group:
                call.done.set_exception(exc)
            return
        start = 0
        for call in group:
            call.done.set_result(out[start:start + len(call.windows)])
            start += len(call.windows)
