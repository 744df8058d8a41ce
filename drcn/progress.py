"""A dependency-free progress display on stderr.

On a terminal: one line rewritten in place. Elsewhere (logs, CI, ``nohup``): a plain line at most every
``interval`` seconds, so long runs still show that they advance without flooding the log.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress("Set5", total=5) as p: ... p.update(extra="baby")``; ``enabled=False`` silences it."""

    def __init__(self, label: str, total: int, stream=None, enabled: bool | None = None, interval: float = 10.0):
        self.label, self.total, self.count = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = True if enabled is None else enabled
        self.interval = interval
        self.start = self.last_line = time.perf_counter()

    def _text(self, extra: str) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(self.total - self.count) / rate:.0f} s" if rate > 0 and self.total > self.count else ""
        total = self.total if self.total else "?"
        return f"{self.label}: {self.count}/{total} ({rate:.2f}/s, {elapsed:.0f} s{eta}) {extra[:40]}"

    def update(self, n: int = 1, extra: str = "") -> None:
        self.count += n
        if not self.enabled:
            return
        if self.tty:
            self.stream.write(f"\r{self._text(extra):<100}")
            self.stream.flush()
        elif time.perf_counter() - self.last_line >= self.interval and (self.count < self.total or not self.total):
            self.stream.write(self._text(extra).rstrip() + "\n")
            self.stream.flush()
            self.last_line = time.perf_counter()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
