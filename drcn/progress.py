"""A dependency-free progress line on stderr (a carriage-return counter on terminals, silent otherwise)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress("Set5", total=5) as p: ... p.update(extra="baby")``."""

    def __init__(self, label: str, total: int, stream=None, enabled: bool | None = None):
        self.label, self.total, self.count = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.perf_counter()

    def update(self, n: int = 1, extra: str = "") -> None:
        self.count += n
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            rate = self.count / elapsed if elapsed > 0 else 0.0
            self.stream.write(f"\r{self.label}: {self.count}/{self.total} ({rate:.2f}/s) {extra[:40]:<40}")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
