"""JSON from files a user may have been handed (safetensors headers, engine sidecars, cache records, ONNX
metadata): parsed with a size and a nesting bound, so a crafted file ends in one line naming it, never in a
``RecursionError`` traceback or a parser that eats the machine's memory."""

from __future__ import annotations

import json
from typing import Any

from drcn.errors import DrcnError

MAX_BYTES = 100_000_000    # the largest safetensors header drcn reads; sidecars and records are a few kB
MAX_DEPTH = 32             # drcn's own documents nest 3 deep


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion (0 for a scalar)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str | bytes, source: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``text``, read from ``source`` (a file name or ``file: what``, used in errors).

    Raises :class:`DrcnError` with one line naming ``source`` for text over ``max_bytes``, invalid JSON, or nesting
    deeper than ``max_depth``."""
    if len(text) > max_bytes:
        raise DrcnError(f"{source}: {len(text):,} bytes of JSON, more than the {max_bytes:,} allowed")
    try:
        value = json.loads(text)
    except RecursionError:
        raise DrcnError(f"{source}: JSON nested too deeply (more than {max_depth} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DrcnError(f"{source}: not valid JSON ({exc})") from None
    if _depth(value) > max_depth:
        raise DrcnError(f"{source}: JSON nested too deeply (more than {max_depth} levels)")
    return value
