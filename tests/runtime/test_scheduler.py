"""The window scheduler of a served replica (drcn.runtime.serve.batching) and the cancellation it relies on
(drcn.cancel), without a server: fairness across requests, batching across requests, given-up work dropped."""

from __future__ import annotations

import contextvars
import threading
import time

import numpy as np
import pytest

from drcn import cancel
from drcn.cancel import Cancelled, Ticket
from drcn.runtime.serve.batching import WindowScheduler


class GatedBackend:
    """A backend whose calls wait for the test to let them through; it records the rows it was given."""

    def __init__(self):
        self.calls: list[np.ndarray] = []
        self.gate = threading.Semaphore(0)

    def run(self, windows: np.ndarray) -> np.ndarray:
        self.gate.acquire(timeout=10)
        self.calls.append(windows.copy())
        return windows * 2


def in_request(ticket: Ticket, fn, *args):
    """Run ``fn`` on a thread of its own under ``ticket``, as the server does; returns (thread, results)."""
    results: dict = {}
    context = contextvars.copy_context()
    context.run(cancel.CURRENT.set, ticket)

    def work():
        try:
            results["value"] = context.run(fn, *args)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            results["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    return thread, results


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def rows(value: float, n: int = 1, size: int = 4) -> np.ndarray:
    return np.full((n, 1, size, size), value, np.float32)


def test_the_least_served_request_goes_first_and_gets_its_own_rows_back():
    backend = GatedBackend()
    scheduler = WindowScheduler(max_batch=1, wait_s=0)
    run = scheduler.wrap(backend.run)
    big, small = Ticket("big"), Ticket("small")
    try:
        big.windows = 100                                 # the large request has had many windows already
        first = in_request(big, run, rows(1))             # it holds the backend (gated)
        wait_until(lambda: scheduler.queued == 0)
        queued = [in_request(big, run, rows(1)), in_request(small, run, rows(5))]
        wait_until(lambda: scheduler.queued == 2)
        for _ in range(3):
            backend.gate.release()
        for thread, _ in (first, *queued):
            thread.join(10)
        # after the call in progress, the small request's call (0 windows so far) ran before the large one's
        assert [float(c[0, 0, 0, 0]) for c in backend.calls] == [1.0, 5.0, 1.0]
        assert float(queued[1][1]["value"][0, 0, 0, 0]) == 10.0 and float(queued[0][1]["value"][0, 0, 0, 0]) == 2.0
        assert small.windows == 1 and big.windows == 102
    finally:
        backend.gate.release(10)
        scheduler.close()


def test_calls_of_the_same_backend_and_shape_batch_across_requests():
    backend = GatedBackend()
    scheduler = WindowScheduler(max_batch=8, wait_s=0.5)
    run = scheduler.wrap(backend.run)
    try:
        backend.gate.release(10)
        threads = [in_request(Ticket(str(i)), run, rows(i, 2)) for i in range(3)]
        for thread, results in threads:
            thread.join(10)
        for i, (_, results) in enumerate(threads):
            np.testing.assert_array_equal(results["value"], rows(2 * i, 2))
        assert len(backend.calls) < 3 and scheduler.stats.windows == 6 and scheduler.stats.calls == 3
        assert sum(size * count for size, count in scheduler.stats.batch_sizes.items()) == 6
    finally:
        scheduler.close()


def test_a_given_up_request_is_dropped_from_the_queue_and_refused_after():
    backend = GatedBackend()
    scheduler = WindowScheduler(max_batch=1, wait_s=0)
    run = scheduler.wrap(backend.run)
    holder, leaving = Ticket("holder"), Ticket("leaving")
    try:
        first = in_request(holder, run, rows(1))
        wait_until(lambda: scheduler.queued == 0)
        queued = in_request(leaving, run, rows(3, 4))
        wait_until(lambda: scheduler.queued == 1)
        leaving.cancel("client_gone")
        backend.gate.release()
        for thread, _ in (first, queued):
            thread.join(10)
        assert isinstance(queued[1]["error"], Cancelled) and "client_gone" in str(queued[1]["error"])
        assert len(backend.calls) == 1 and scheduler.stats.dropped_calls == 1     # never computed
        again = in_request(leaving, run, rows(3))
        again[0].join(10)
        assert isinstance(again[1]["error"], Cancelled) and scheduler.stats.dropped_calls == 2
    finally:
        backend.gate.release(10)
        scheduler.close()


def test_a_backend_error_reaches_every_caller_of_its_batch():
    def broken(_):
        raise RuntimeError("backend failed")

    scheduler = WindowScheduler(max_batch=4, wait_s=0.2)
    run = scheduler.wrap(broken)
    try:
        threads = [in_request(Ticket(), run, rows(1)) for _ in range(2)]
        for thread, _ in threads:
            thread.join(10)
        assert all(isinstance(r["error"], RuntimeError) for _, r in threads)
    finally:
        scheduler.close()


def test_host_work_stops_at_its_next_check_once_its_ticket_is_cancelled():
    from drcn import matlab
    from drcn.runtime.media import colour

    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ticket = Ticket("gone")
    ticket.cancel("deadline")
    context = contextvars.copy_context()
    context.run(cancel.CURRENT.set, ticket)
    with pytest.raises(Cancelled, match="deadline"):
        context.run(matlab.imresize, image, 2)
    with pytest.raises(Cancelled):
        context.run(colour.prepare, image, 2)
    # outside a request nothing is checked against, and the result is the usual one
    assert matlab.imresize(image, 2).shape == (80, 100, 3)
    assert cancel.current() is None


def test_tiling_counts_the_windows_a_request_planned_and_did():
    from drcn.runtime.tiling import plan, run_tiled

    ticket = Ticket()
    context = contextvars.copy_context()
    context.run(cancel.CURRENT.set, ticket)
    image = np.zeros((1, 100, 90), np.float32)
    context.run(run_tiled, lambda w: w, image, 32, 4, 2)
    assert ticket.planned == ticket.tiles_done == len(plan(100, 90, 32, 4)[1]) == 12 and ticket.undone == 0
