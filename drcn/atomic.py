"""Atomic file output: write to a temporary name in the target folder, then rename into place.

The one way every drcn command writes what it produces:
- a crash, Ctrl-C, SIGKILL or full disk never leaves a half-written file under the final name, and an existing
  file is replaced only by a complete new one;
- an artefact made of several files (an engine and its sidecar, a Triton model folder) is written with
  :func:`atomic_outputs`: every file is complete in a temporary before the first rename, and the renames happen in
  the order given, the file that vouches for the others (sidecar, config) last;
- folders created for an output that then fails are removed again, so a failed command leaves nothing behind;
- the temporaries of a killed run (``.<name>.<host>-<pid>.<random>.tmp<suffix>``) are swept the next time that
  output is written; a temporary whose process still runs is left alone, so two runs side by side do not collide;
- :func:`check_destination` says before any work whether an output can be written at all.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from drcn.errors import DrcnError

# Errors that mean "the disk (or the file size limit) is full": one line for the user, never a traceback.
_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# A temporary written on another host of a shared file system cannot be checked for a live process: it is taken as
# stale once it is this old.
_FOREIGN_STALE_SECONDS = 24 * 3600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_host()}-{os.getpid()}."


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, outermost first."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_created(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # something else was written there meanwhile: it is not ours to remove
            return


def _write_error(path: Path, exc: OSError) -> DrcnError:
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return DrcnError(f"{path}: the disk is full or the file size limit is reached ({reason}); nothing was "
                         "written and what was there before is kept")
    return DrcnError(f"{path}: cannot write here ({reason})")


def check_destination(path: str | os.PathLike, option: str = "", folder: bool = False) -> Path:
    """Raise a one-line error unless ``path`` (a file, or a folder when ``folder``) could be written, without
    creating anything: the nearest existing parent must be a writable folder. ``option`` names the flag."""
    path = Path(path)
    name = f"{option} {path}" if option else str(path)
    if path.exists():
        if folder and not path.is_dir():
            raise DrcnError(f"{name}: exists and is not a folder")
        if not folder and path.is_dir():
            raise DrcnError(f"{name}: is a folder, not a file name")
    probe = path if folder and path.is_dir() else path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise DrcnError(f"{name}: cannot write here ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DrcnError(f"{name}: cannot write here (no permission to write in {probe})")
    return path


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """``with atomic_outputs(engine, sidecar) as (a, b): write(a); write(b)``: all or nothing.

    Each temporary keeps its file's suffix (for format sniffing). Once the block ends without an error, the files
    are renamed into place in the order given; if it fails, every temporary and every folder made for them is
    removed and what was there before is untouched.
    """
    targets = [Path(p) for p in paths]
    for path in targets:
        if path.is_dir():
            raise DrcnError(f"{path}: is a folder, not a file name")
    created: list[Path] = []
    temps: list[Path] = []
    try:
        for path in targets:
            created += _make_parents(path.parent)
            remove_stale_temps(path)
            fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=f".tmp{path.suffix}", dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        _remove_created(created)
        raise _write_error(targets[len(temps)], exc) from None
    try:
        try:
            yield tuple(temps)
        except OSError as exc:
            if exc.errno in _FULL:
                raise _write_error(targets[0], exc) from None
            raise
        mode = 0o666 & ~_umask()  # mkstemp creates 0600; give the files the user's usual mode
        for tmp in temps:
            os.chmod(tmp, mode)
        for tmp, path in zip(temps, targets):
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        _remove_created(created)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_output("out.png") as tmp: write(tmp)`` -- ``tmp`` keeps the suffix, for format sniffing."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


def _is_stale(tmp: Path, prefix_length: int, suffix_length: int) -> bool:
    owner = tmp.name[prefix_length:len(tmp.name) - suffix_length].rpartition(".")[0]   # "<host>-<pid>"
    host, _, pid = owner.rpartition("-")
    if not pid.isdigit():
        return True  # not written by this scheme (an older drcn): nobody can still be writing it
    if host != _host():
        try:
            return time.time() - tmp.stat().st_mtime > _FOREIGN_STALE_SECONDS
        except OSError:
            return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete the temporaries that killed runs left for ``path``; returns how many."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    prefix, suffix = f".{path.name}.", f".tmp{path.suffix}"
    removed = 0
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        if _is_stale(tmp, len(prefix), len(suffix)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())
