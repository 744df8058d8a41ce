"""What a replica lets in: at most ``--queue`` requests in hand at once (503 with Retry-After beyond), and the working
memory each needs from the replica's budget (413 where it could never fit, 503 where the requests in hand leave no
room now). Video jobs draw on the same budget (:meth:`Admission.job_memory`) and wait, instead of being refused,
while images hold it."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

from drcn.errors import DrcnError
from drcn.memory import WorkReservations, describe
from drcn.runtime.serve.http import HttpError


class Admission:
    """``max_pending`` requests in hand and ``work``'s bytes of working memory; ``refused(reason)`` is told of every
    503 ("busy" or "memory") for the metrics."""

    def __init__(self, max_pending: int, work: WorkReservations, refused: Callable[[str], None]):
        self.max_pending, self.work, self._refused = max_pending, work, refused
        self.pending = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def request(self):
        """A place among the requests in hand for the length of the context; 503 where every place is taken."""
        with self._lock:
            if self.pending >= self.max_pending:
                self._refused("busy")
                raise HttpError(503, f"busy: {self.pending} requests in hand (the limit); try again shortly",
                                {"Retry-After": "1"})
            self.pending += 1
        try:
            yield
        finally:
            with self._lock:
                self.pending -= 1

    def memory(self, nbytes: int, what: str):
        """A context holding ``nbytes`` of working memory for one request: 413 where it could never fit, 503
        (Retry-After) where the requests in hand leave no room now."""
        work = self.work
        if not work.fits_ever(nbytes):
            raise HttpError(413, f"{what} needs about {describe(nbytes)} of working memory, over this replica's "
                                 f"{describe(work.limit)} for requests (drcn-serve --memory-budget)")
        if not work.reserve(nbytes):
            self._refused("memory")
            raise HttpError(503, f"busy: {what} needs about {describe(nbytes)} of working memory and the requests "
                                 f"in hand hold {describe(work.reserved)} of {describe(work.limit)}; try again shortly",
                            {"Retry-After": "2"})
        return work.held(nbytes)

    def job_memory(self, nbytes: int, what: str):
        """A job's working memory: a context holding it, None where it does not fit now (the job waits),
        :class:`DrcnError` where it never fits (the job fails)."""
        if not self.work.fits_ever(nbytes):
            raise DrcnError(f"{what} needs about {describe(nbytes)} of working memory, over this replica's "
                            f"{describe(self.work.limit)} for work (drcn-serve --memory-budget)")
        if not self.work.reserve(nbytes):
            return None
        return self.work.held(nbytes)
