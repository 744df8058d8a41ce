"""A request's work on a thread of its own, under a :class:`drcn.cancel.Ticket`: when the client goes away (Ray Serve
cancels the handler, or the connection is seen closed) or the deadline passes, the ticket is cancelled and the work
stops at its next check (a tap of the bicubic enlargement, a band of colour conversion, a window batch), its queued
windows dropped and counted."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from starlette.requests import Request

from drcn.cancel import CURRENT, Ticket
from drcn.runtime.serve.http import HttpError


class RequestThreads:
    """Threads for the requests a replica holds. ``gave_up(reason)`` is told of every request given up
    ("client_gone", "deadline") for the metrics."""

    def __init__(self, max_pending: int, deadline_s: float, gave_up: Callable[[str], None]):
        # A thread for every request the replica holds (and the few still unwinding after being given up): a
        # shared default pool of cores + 4 threads let six large requests keep every small one from starting.
        self.pool = ThreadPoolExecutor(2 * max_pending + 2, thread_name_prefix="drcn-request")
        self.deadline_s, self._gave_up = deadline_s, gave_up
        self.counts = {"cancelled_requests": 0, "dropped_windows": 0}

    async def run(self, request: Request, fn, *args):
        """``fn(*args)`` on a thread of its own with the request's ticket current: its result, or 504 past the
        deadline, 499 when the client went away (the work then stops at its next check)."""
        ticket = Ticket(request.url.path)
        context = contextvars.copy_context()
        context.run(CURRENT.set, ticket)       # the thread's host work and window calls see it (drcn.cancel)
        try:
            task = asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(context.run, fn, *args))
            task.add_done_callback(lambda t: self._ended(ticket, t))
            deadline = time.monotonic() + self.deadline_s
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(0.25, max(0.0, deadline - time.monotonic())))
                if done:
                    return task.result()
                if time.monotonic() >= deadline:
                    self._give_up(ticket, "deadline")
                    raise HttpError(504, f"the request took longer than its deadline of {self.deadline_s:g} s")
                if await request.is_disconnected():
                    self._give_up(ticket, "client_gone")
                    raise HttpError(499, "the client went away")
        except asyncio.CancelledError:
            # Ray Serve cancels the handler when the HTTP client disconnects: the work must stop with it.
            self._give_up(ticket, "client_gone")
            raise

    def _ended(self, ticket: Ticket, task) -> None:
        if not task.cancelled():
            task.exception()                  # retrieved: a given-up task's error is expected
        if ticket.cancelled:
            self.counts["dropped_windows"] += ticket.undone

    def _give_up(self, ticket: Ticket, reason: str) -> None:
        if not ticket.cancelled:
            ticket.cancel(reason)
            self.counts["cancelled_requests"] += 1
            self._gave_up(reason)
