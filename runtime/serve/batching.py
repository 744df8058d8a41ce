"""One replica's backends, shared fairly by the requests it holds.

A replica answers several requests at once (a thread each); each cuts its image into windows and calls its
backend's ``run`` with a few windows at a time. :class:`WindowScheduler` stands in front of every backend of the
replica (one per scale and kind asked for): calls from any thread are queued, and one worker thread runs them, so
backends that are not thread-safe (OpenVINO's latency mode, CUDA contexts) are safe behind it and two scales never
fight over the cores.

Which call runs next is decided per request, not by arrival: the call of the request that has had the fewest
windows computed so far goes first (:class:`drcn.cancel.Ticket` counts them), so a small request that arrives while
a large one is running waits for at most the batch in progress, not for the large image. Calls of the same backend
and window shape from other requests join the batch (up to ``max_batch`` windows), in the same order. A call whose
request was given up (client gone, deadline passed) is dropped from the queue, never computed, and counted.

A batch reaches the backend in calls of a power of two windows, at most ``max_batch`` (7 windows: 4, 2 and 1; a
request's call larger than ``max_batch`` is cut the same way): a backend that compiles one model per input shape
(OpenVINO) then holds at most log2(max_batch) + 1 shapes per window shape, where any count up to ``max_batch`` would
make as many, each one more compile and its activation buffers.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np

from drcn.cancel import Cancelled, Ticket, current

Run = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(eq=False)
class _Call:
    run: Run
    windows: np.ndarray      # (n, C, h, w) float32
    ticket: Ticket
    order: int               # arrival, the tie-breaker
    done: Future

    def key(self) -> tuple[int, int]:
        return self.ticket.windows, self.order


@dataclasses.dataclass
class SchedulerStats:
    """Counters of a scheduler since it started (read by the server's /v1/info and /metrics)."""

    calls: int = 0                 # calls of requests (each a few windows)
    windows: int = 0               # windows computed
    backend_calls: int = 0         # batches run: calls / backend_calls is what batching across requests saves
    dropped_calls: int = 0         # calls refused or dropped because their request was given up
    batch_sizes: dict[int, int] = dataclasses.field(default_factory=dict)   # windows per backend call -> count


def power_of_two_chunks(count: int, largest: int) -> list[tuple[int, int]]:
    """``count`` windows as (start, size) calls whose sizes are powers of two of at most ``largest``, largest first
    (7, 8 -> 4, 2, 1; 9, 4 -> 4, 4, 1)."""
    top = 1 << (max(1, largest).bit_length() - 1)
    chunks, start = [], 0
    while count - start >= top:
        chunks.append((start, top))
        start += top
    left = count - start
    for bit in reversed(range(left.bit_length())):
        if left & (1 << bit):
            chunks.append((start, 1 << bit))
            start += 1 << bit
    return chunks


class WindowScheduler:
    """Runs the backends of one replica from one thread, fairly across requests, batching across requests.

    Args:
        max_batch: windows per backend call at most (a single call larger than this is cut into calls of at most it).
        wait_s: how long the worker waits for more calls of the same backend and shape once it has one.
    """

    def __init__(self, max_batch: int, wait_s: float = 0.003):
        self.max_batch, self.wait_s = max(1, int(max_batch)), wait_s
        self.stats = SchedulerStats()
        self._pending: list[_Call] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="drcn-scheduler", daemon=True)
        self._worker.start()

    def wrap(self, run: Run) -> Run:
        """``run`` as a callable any thread may use: (n, C, h, w) float32 -> the backend's output for those rows."""
        return lambda windows: self.submit(run, windows)

    @property
    def queued(self) -> int:
        """Calls waiting for the worker now."""
        return len(self._pending)

    def submit(self, run: Run, windows: np.ndarray) -> np.ndarray:
        ticket = current()
        if ticket is None:                     # work outside a request: a ticket of its own, served like one
            ticket = Ticket("untracked")
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        with self._cond:
            self.stats.calls += 1
            if ticket.cancelled:
                self.stats.dropped_calls += 1
                raise Cancelled(f"given up: {ticket.reason}")
            if self._closed:
                raise Cancelled("the replica is stopping")
            call = _Call(run, windows, ticket, next(self._order), Future())
            self._pending.append(call)
            self._cond.notify()
        return call.done.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for call in self._pending:
                call.done.set_exception(Cancelled("the replica is stopping"))
            self._pending.clear()
            self._cond.notify()
        self._worker.join(timeout=10)

    # -- the worker -----------------------------------------------------------------------------------------------
    def _sweep(self) -> None:
        """Drop the queued calls of requests given up (under the lock)."""
        kept = []
        for call in self._pending:
            if call.ticket.cancelled:
                self.stats.dropped_calls += 1
                call.done.set_exception(Cancelled(f"given up: {call.ticket.reason}"))
            else:
                kept.append(call)
        self._pending = kept

    def _take(self) -> list[_Call] | None:
        """The next batch: the least-served request's call, and calls of the same backend and shape that fit,
        least-served first; None when closed."""
        with self._cond:
            while True:
                self._sweep()
                if self._pending or self._closed:
                    break
                self._cond.wait()
            if not self._pending:
                return None
            first = min(self._pending, key=_Call.key)
            deadline = time.monotonic() + self.wait_s
            while True:
                same = sorted((c for c in self._pending if c is not first and c.run is first.run
                               and c.windows.shape[1:] == first.windows.shape[1:]), key=_Call.key)
                group, count = [first], len(first.windows)
                for call in same:
                    if count + len(call.windows) <= self.max_batch:
                        group.append(call)
                        count += len(call.windows)
                left = deadline - time.monotonic()
                if count >= self.max_batch or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
                self._sweep()
                if first.ticket.cancelled or first not in self._pending:
                    return []
            for call in group:
                self._pending.remove(call)
            return group

    def _serve(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            if group:
                self._run_group(group)

    def _run_group(self, group: list[_Call]) -> None:
        windows = np.concatenate([c.windows for c in group]) if len(group) > 1 else group[0].windows
        try:
            parts = [group[0].run(windows[start:start + size])
                     for start, size in power_of_two_chunks(len(windows), self.max_batch)]
            out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        except BaseException as exc:  # every caller of this batch gets the backend's error
            for call in group:
                call.done.set_exception(exc)
            return
        stats = self.stats
        stats.backend_calls += 1            # one batch, however many power-of-two calls it took
        stats.windows += len(windows)
        stats.batch_sizes[len(windows)] = stats.batch_sizes.get(len(windows), 0) + 1
        start = 0
        for call in group:
            call.ticket.windows += len(call.windows)
            call.done.set_result(out[start:start + len(call.windows)])
            start += len(call.windows)
