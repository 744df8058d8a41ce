"""Optional packages: whether one is installed, and importing one with a one-line install hint when absent.

Heavy libraries (torch, onnxruntime, openvino, tensorrt, CUDA bindings, av, ray) are imported only inside the
code that needs them, through :func:`require`, so a missing one is a user message, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util

from drcn.errors import MissingDependencyError


def installed(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken __spec__
        return False


def require(module: str, purpose: str, install: str):
    """Import ``module`` lazily; raise :class:`MissingDependencyError` with an install hint when absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only translate "the package itself is missing"; a broken install inside it is a real error.
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise MissingDependencyError(module.split(".")[0], purpose, install) from None
