"""The memory budget of one process (a drcn-run, a benchmark, a served replica): what it may hold, split between
the compiled models it keeps and the working memory of the images in hand.

- the budget: ``DRCN_MEMORY_BUDGET`` (``8G``, ``512M``, ``1.5GiB`` or bytes; ``drcn-run --memory-budget`` and
  ``drcn-serve --memory-budget`` set it), else 3/4 of the machine's memory (or of the cgroup's limit, where a
  container has a smaller one); a served replica's default is :data:`REPLICA_DEFAULT` where that is less, and its
  shares are taken from what is left after its model is loaded (:func:`set_baseline`), so the budget bounds its
  resident memory;
- :data:`MODEL_SHARE` of it for compiled models: a backend that keeps one compiled model per input shape (OpenVINO)
  reports each model's bytes to :data:`COMPILED` and drops its least recently used shapes while the process holds
  more than that share (bounded by bytes, not by count: one whole-image shape can be 1 GB, a tile shape 50 MB);
- :data:`WORK_SHARE` for the working memory of the images being upscaled (:class:`WorkReservations`): a server admits
  a request only while its estimate fits beside the others in hand.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

from drcn.errors import DrcnError

ENV = "DRCN_MEMORY_BUDGET"
DEFAULT_FRACTION = 0.75
REPLICA_DEFAULT = 3 << 30   # a served replica's default budget, where the machine's share is larger
MODEL_SHARE = 0.4
WORK_SHARE = 0.5
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, what: str = ENV) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (> 0); one line naming ``what`` otherwise."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not found:
        raise DrcnError(f"{what} {text!r}: a size such as 8G, 512M or a number of bytes")
    value = float(found.group(1)) * _UNITS[found.group(2)]
    if not value >= 1 << 20:
        raise DrcnError(f"{what} {text!r}: at least 1M")
    return int(value)


def machine_memory() -> int | None:
    """Bytes of memory this process may use at most: the machine's, or its cgroup's limit where smaller."""
    total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        total = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit)) if total else int(limit)
    except OSError:
        pass
    return total


def budget() -> int | None:
    """The budget in force, in bytes: ``$DRCN_MEMORY_BUDGET``, else 3/4 of :func:`machine_memory` (None: unknown)."""
    text = os.environ.get(ENV, "").strip()
    if text:
        return parse_size(text)
    total = machine_memory()
    return int(total * DEFAULT_FRACTION) if total else None


def set_baseline(nbytes: int) -> None:
    """What the process holds before any image (a replica with its model loaded): the shares of the budget are
    taken from what is left, so that the budget bounds the whole resident memory."""
    global _BASELINE
    _BASELINE = max(0, int(nbytes))


def available() -> int | None:
    """The budget less the baseline (:func:`set_baseline`); None where the budget is unknown."""
    whole = budget()
    return None if whole is None else max(1 << 20, whole - _BASELINE)


_BASELINE = 0


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def describe(nbytes: int | None) -> str:
    return "unknown" if nbytes is None else f"{nbytes / 2**30:.1f} GiB"


def give_back_freed() -> None:
    """Return the heap's free memory to the system (glibc's malloc_trim; nothing elsewhere): what large images
    freed stays resident otherwise."""
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


class CompiledLedger:
    """Bytes held by compiled models in this process, by owner and key, least recently used first across every
    owner: a replica holding one backend per scale drops the shape used longest ago, whichever backend holds it.
    Thread-safe; an owner's ``forget(key)`` is called outside the ledger's lock."""

    def __init__(self):
        self._held: dict[tuple[int, object], list] = {}   # (id(owner), key) -> [bytes, last use, forget]
        self._lock = threading.Lock()
        self._clock = 0
        self.compiles = 0       # models compiled in this process (a recompile of a dropped shape counts again)

    def add(self, owner: object, key: object, nbytes: int, forget=None) -> None:
        """``key`` of ``owner`` now holds ``nbytes``; ``forget(key)`` drops it (None: never dropped here)."""
        with self._lock:
            self._clock += 1
            self._held[(id(owner), key)] = [max(0, int(nbytes)), self._clock, forget]
            self.compiles += 1

    def touch(self, owner: object, key: object) -> None:
        with self._lock:
            entry = self._held.get((id(owner), key))
            if entry is not None:
                self._clock += 1
                entry[1] = self._clock

    def remove(self, owner: object, key: object) -> None:
        with self._lock:
            self._held.pop((id(owner), key), None)

    def total(self) -> int:
        with self._lock:
            return sum(entry[0] for entry in self._held.values())

    def limit(self) -> int | None:
        left = available()
        return int(left * MODEL_SHARE) if left else None

    def over(self) -> bool:
        limit = self.limit()
        return limit is not None and self.total() > limit

    def make_room(self, owner: object, key: object, incoming: int = 0) -> int:
        """Drop the least recently used compiled models of any owner, never ``key`` of ``owner`` (the one in use),
        while what is held plus ``incoming`` bytes (a model about to compile) is over the share; how many dropped."""
        dropped = 0
        while True:
            with self._lock:
                limit = self.limit()
                held = sum(entry[0] for entry in self._held.values())
                if limit is None or held + incoming <= limit:
                    return dropped
                keep = (id(owner), key)
                victims = [(entry[1], name) for name, entry in self._held.items()
                           if name != keep and entry[2] is not None]
                if not victims:
                    return dropped
                _, name = min(victims)
                forget = self._held.pop(name)[2]
            forget(name[1])
            dropped += 1


COMPILED = CompiledLedger()


class WorkReservations:
    """Working memory promised to the images in hand: :meth:`reserve` says whether one more fits now."""

    def __init__(self, total: int | None):
        self.limit = int(total * WORK_SHARE) if total else None
        self.reserved = 0
        self._lock = threading.Lock()

    def fits_ever(self, nbytes: int) -> bool:
        return self.limit is None or nbytes <= self.limit

    def reserve(self, nbytes: int) -> bool:
        with self._lock:
            if self.limit is not None and self.reserved + nbytes > self.limit:
                return False
            self.reserved += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved = max(0, self.reserved - nbytes)
            idle = self.reserved == 0
        if idle:
            give_back_freed()

    @contextlib.contextmanager
    def held(self, nbytes: int):
        """A context that releases ``nbytes`` (already reserved) when it ends."""
        try:
            yield
        finally:
            self.release(nbytes)
