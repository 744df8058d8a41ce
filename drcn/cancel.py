"""Cooperative cancellation: work that nobody waits for stops at its next check.

A server gives each request a :class:`Ticket` and runs the request's work with it as the current ticket
(:data:`CURRENT`, a context variable, so it follows the work onto the thread that runs it). Long loops call
:func:`check` between steps: the bicubic enlargement between its taps (:mod:`drcn.matlab`), the colour conversion
between bands, the window scheduler before each window batch. Once the ticket is cancelled (the client went away,
the deadline passed), the next check raises :class:`Cancelled` and the work unwinds. Outside a server no ticket is
set and :func:`check` costs one context-variable read.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import threading

_numbers = itertools.count(1)


class Cancelled(Exception):
    """The request this work was for was given up; the message says why (client gone, deadline passed)."""


@dataclasses.dataclass(eq=False)
class Ticket:
    """One request's claim on compute: its cancel flag; the windows the backend computed for it so far (the
    measure by which :class:`drcn.runtime.serve.batching.WindowScheduler` shares the backend fairly); the windows
    of its images' tiling plans, and those of them done (what a given-up request left undone)."""

    name: str = ""
    number: int = dataclasses.field(default_factory=lambda: next(_numbers))
    windows: int = 0
    planned: int = 0
    tiles_done: int = 0
    reason: str = ""
    _event: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def undone(self) -> int:
        """Windows planned for this work and never computed."""
        return max(0, self.planned - self.tiles_done)


CURRENT: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("drcn_ticket", default=None)


def current() -> Ticket | None:
    """The ticket of the work running here, or None outside a server's request."""
    return CURRENT.get()


def check() -> None:
    """Raise :class:`Cancelled` if the current work's ticket was cancelled; else nothing."""
    ticket = CURRENT.get()
    if ticket is not None and ticket.cancelled:
        raise Cancelled(f"given up: {ticket.reason}")
