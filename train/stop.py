"""Graceful stop: Ctrl-C / SIGTERM end a training run at the next step boundary with a checkpoint.

Stopping only between steps keeps the checkpoint exact: resuming it gives the same weights as a run that was
never interrupted. A second Ctrl-C stops at once (the step in flight is lost).
"""

from __future__ import annotations

import contextlib
import signal
import threading


class StopRequest:
    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        """Catch SIGINT and SIGTERM while inside (signal handlers only exist in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
