"""User-facing errors and the CLI boundary that turns them into one-line messages.

Code anywhere in the toolkit raises :class:`DrcnError` for a user mistake (a missing file, a bad option, a model
that does not match). Each CLI entry point is wrapped by :func:`cli_entry`, which prints
``<prog>: error: <message>`` on one line and exits with status 2, so a user never sees a traceback for their own
mistake. Bugs (any other exception) still show a traceback: hiding those would hide real problems.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, NoReturn


class DrcnError(Exception):
    """A problem the user can fix; the message names the file or option and what is wrong."""


class MissingDependencyError(DrcnError):
    """An optional package needed by the chosen feature is not installed."""

    def __init__(self, package: str, purpose: str, install: str):
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed: {install}")


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
