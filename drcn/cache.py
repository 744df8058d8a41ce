"""The one cache root of the toolkit: ``$DRCN_CACHE``, else the platform's user cache folder.

Everything derived and re-creatable lives below it, one sub-folder per kind: training patches, exported ONNX
variants for benchmarks, OpenVINO compiled blobs, TensorRT engines built on demand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
