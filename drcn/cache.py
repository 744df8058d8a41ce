"""The one cache root of the toolkit: ``$DRCN_CACHE``, else the platform's user cache folder.

Everything derived and re-creatable lives below it, one sub-folder per kind: training patches, exported ONNX
variants for benchmarks, frame graphs, OpenVINO compiled blobs, TensorRT engines built on demand. Every entry is
sealed with the checksum it was written with and checked on every read (:func:`seal`, :func:`verified`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """``$DRCN_CACHE`` if set; else ``%LOCALAPPDATA%\\drcn\\Cache`` (Windows), ``~/Library/Caches/drcn``
    (macOS), ``$XDG_CACHE_HOME/drcn`` or ``~/.cache/drcn`` (elsewhere)."""
    env = os.environ.get("DRCN_CACHE")
    if env:
        return Path(env)
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "drcn" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "drcn"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drcn"


def cache_dir(kind: str) -> Path:
    """The sub-folder for one kind of cached file, e.g. ``cache_dir("patches")`` (not created here)."""
    return cache_root() / kind


# -- verified entries ----------------------------------------------------------------------------------------------
# A cache entry is trusted only as far as it matches the checksum recorded when it was written: a flipped bit in a
# cached graph or blob can still parse and then give wrong pixels without a word. Every writer seals what it wrote;
# every reader checks the seal and makes again (saying so) what does not match. A single-file entry is not removed
# first: writers rename complete files into place and seal them after, so a second process that checks in between
# sees an entry without its seal, and removing it there would pull the file from under the process that wrote it
# (several Ray workers or serve replicas making the same frame graph at once). The rebuild replaces it atomically.

SEAL_SUFFIX = ".sha256"
FOLDER_SEAL = ".drcn-sha256.json"


def seal_path(entry: Path) -> Path:
    return entry.with_name(entry.name + SEAL_SUFFIX)


def seal(entry: str | os.PathLike) -> None:
    """Record the checksum of the complete file ``entry`` beside it (written atomically, after the entry)."""
    from drcn import atomic
    from drcn.checksums import file_sha256

    entry = Path(entry)
    atomic.write_text(seal_path(entry), file_sha256(entry) + "\n")


def _say(message: str) -> None:
    print(f"drcn: {message}", file=sys.stderr)


def verified(entry: str | os.PathLike, log: Callable[[str], None] = _say) -> bool:
    """True when ``entry`` exists and matches its seal. For an entry without a seal, or whose bytes changed since it
    was sealed, ``log`` says which and why and False is returned: the caller makes it again, atomically replacing it
    (it is never read meanwhile)."""
    from drcn.checksums import file_sha256

    entry = Path(entry)
    if not entry.is_file():
        return False
    try:
        recorded = seal_path(entry).read_text().strip()
    except OSError:
        recorded = None
    if recorded is not None and recorded == file_sha256(entry):
        return True
    why = "has no checksum record" if recorded is None else "no longer matches the checksum it was written with"
    log(f"cache: {entry} {why} (damaged, left half-written, or being written by another process); making it again")
    return False


def _folder_files(folder: Path) -> dict[str, str]:
    from drcn.checksums import file_sha256

    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != FOLDER_SEAL and not (p.name.startswith(".") and ".tmp" in p.name)}


def seal_folder(folder: str | os.PathLike) -> None:
    """Record the checksum of every file in ``folder`` (a cache another library writes, e.g. OpenVINO's blobs)."""
    from drcn import atomic

    folder = Path(folder)
    if folder.is_dir():
        atomic.write_text(folder / FOLDER_SEAL, json.dumps(_folder_files(folder), indent=1, sort_keys=True))


def verified_folder(folder: str | os.PathLike, log: Callable[[str], None] = _say) -> bool:
    """True when every file in ``folder`` matches the checksum its seal lists for it. A file that changed since, or
    that the seal does not list (a half-written blob of a killed run, a foreign file), is removed (``log`` names it)
    and False is returned: the library that owns the folder then writes it again. A missing folder is False."""
    from drcn import bounded_json
    from drcn.errors import DrcnError

    folder = Path(folder)
    if not folder.is_dir():
        return False
    present = _folder_files(folder)
    try:
        recorded = bounded_json.loads((folder / FOLDER_SEAL).read_bytes(), str(folder / FOLDER_SEAL), 10_000_000)
        recorded = recorded if isinstance(recorded, dict) else {}
    except (OSError, DrcnError):
        recorded = {}
    bad = sorted(name for name, digest in present.items() if recorded.get(name) != digest)
    if not bad:
        return bool(present)
    for name in bad:
        (folder / name).unlink(missing_ok=True)
    listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    log(f"cache: {folder}: {listed} did not match the checksums recorded when written (damaged, or left "
        "half-written); removed, compiling again")
    seal_folder(folder)
    return False
