"""What a client reads never names a path on the server."""

from __future__ import annotations

import re

# An absolute path (two or more parts) in text a client reads: only its last part is shown.
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/()'\"]+/)+([^\s/()'\"]+)")


def without_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its file name (a client learns the model, not the server's
    folders)."""
    return _PATH.sub(r"\1", text)
