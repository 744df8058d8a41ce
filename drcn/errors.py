"""User-facing errors and the CLI boundary that turns them into one-line messages.

Code anywhere in the toolkit raises :class:`DrcnError` for a user mistake (a missing file, a bad option, a model
that does not match). Each CLI entry point is wrapped by :func:`cli_entry`, which prints
``<prog>: error: <message>`` on one line and exits with status 2, so a user never sees a traceback for their own
mistake. Bugs (any other exception) still show a traceback: hiding those would hide real problems.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Callable, NoReturn


class DrcnError(Exception):
    """A problem the user can fix; the message names the file or option and what is wrong."""


class InvalidArgument(DrcnError, ValueError):
    """A bad argument to the Python API (a scale that is not a finite number > 1, an empty image): a
    :class:`DrcnError` that ``except ValueError`` also catches; the message names the argument."""


class OverLimit(DrcnError):
    """An input over a size limit (pixels, working memory): refused before the work (a server answers 413)."""


class ShortNow(DrcnError):
    """Too little of a shared resource free at this moment (memory other work holds), where the input itself is
    within every limit: worth retrying later (a server answers 503 with Retry-After), unlike :class:`OverLimit`."""


class MissingDependencyError(DrcnError):
    """An optional package needed by the chosen feature is not installed."""

    def __init__(self, package: str, purpose: str, install: str):
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed: {install}")


# Lines of backend messages that say where in the backend's source the error was raised, not why.
_LOCATION_LINES = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?|in function .*)$")
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def backend_reason(exc: BaseException, limit: int = 400) -> str:
    """A backend's exception text reduced to one line that carries the reason.

    OpenVINO's messages open with lines naming its own source files (``Exception from src/inference/...:84:``) and
    put the reason further down; ONNX Runtime prefixes a status code. Those parts are dropped and what is left is
    joined into one line of at most ``limit`` characters."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [_ORT_PREFIX.sub("", line) for line in lines if line and not _LOCATION_LINES.match(line)]
    text = ": ".join(kept) if kept else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def cli_entry(prog: str) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a CLI ``main(argv)`` so that :class:`DrcnError` and Ctrl-C end with one line, not a traceback."""

    def wrap(main: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return int(main(argv) or 0)
            except DrcnError as exc:
                fail(prog, str(exc))
            except KeyboardInterrupt:
                fail(prog, "interrupted", code=130)

        return run

    return wrap


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message (see prog --help)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")
