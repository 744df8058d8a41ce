"""The console scripts' reference, rendered from their own argparse parsers (the docs site's reference pages are made
from this at build time, never written by hand), and a check that a command line uses only options its parser has
(the docs' drift test). Every ``drcn-*`` script's module has ``build_parser()``; nothing here runs a command.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from importlib import metadata

from drcn.errors import DrcnError


def console_scripts() -> dict[str, str]:
    """name -> "module:function" of every console script drcn installs (``[project.scripts]``)."""
    found = {e.name: e.value for e in metadata.entry_points(group="console_scripts") if e.value.startswith("drcn.")}
    if not found:
        raise DrcnError("drcn's console scripts are not installed (pip install -e .)")
    return dict(sorted(found.items()))


def parser_of(name: str) -> argparse.ArgumentParser:
    """The argparse parser of console script ``name`` (its module's ``build_parser()``)."""
    target = console_scripts().get(name)
    if target is None:
        raise DrcnError(f"{name}: not a drcn console script")
    return importlib.import_module(target.split(":")[0]).build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser below it, at any depth (``drcn-bench figure tiles``)."""
    return [parser, *(p for child in _subparsers(parser).values() for p in _all_parsers(child))]


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` ("--tile", "-o"), without -h/--help; subcommands' as "sub --opt"."""
    found = {s for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
             for s in a.option_strings}
    for sub, child in _subparsers(parser).items():
        found |= {f"{sub} {s}" for s in option_strings(child)}
    return found


def _default(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS, False) or isinstance(action, argparse._StoreTrueAction):
        return ""
    value = action.default
    if isinstance(value, (list, tuple)):
        value = ",".join("x".join(map(str, v[::-1])) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float)
                         else str(v) for v in value)
    return f"`{value}`"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").replace("%%", "%")


def render(name: str, parser: argparse.ArgumentParser | None = None, heading: str = "#") -> str:
    """Markdown for console script ``name``: usage, description, a table of arguments and options, and one section
    per subcommand."""
    parser = parser or parser_of(name)
    parser.prog = name
    lines = [f"{heading} `{name}`", "", "```text", parser.format_usage().strip().removeprefix("usage: "), "```", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        metavar = ""
        if action.option_strings and action.nargs != 0:
            metavar = action.metavar or (action.dest.upper() if not action.choices else
                                         "{" + ",".join(map(str, action.choices)) + "}")
            metavar = f" `{metavar}`" if isinstance(metavar, str) else ""
        rows.append(f"| {flags}{metavar} | {_cell(action.help)} | {_default(action)} |")
    if rows:
        lines += ["| argument | what | default |", "|---|---|---|", *rows, ""]
    for sub, child in _subparsers(parser).items():
        lines += [render(f"{name} {sub}", child, heading + "#"), ""]
    return "\n".join(lines)


SHELL_FENCES = ("", "bash", "sh", "shell")   # fences whose lines are commands (```console: only its "$ " lines)


def command_lines(markdown: str) -> list[str]:
    """Every ``drcn-*`` command line in the shell code blocks of ``markdown`` (:data:`SHELL_FENCES`; in a
    ``console`` block the lines after a ``$ ``), continuations joined, comments and what follows a pipe,
    redirection, ``&`` or ``&&`` cut off (e.g. ``.venv/bin/drcn-run --tile 256 frames``)."""
    found, in_code, shell, console, pending = [], False, False, False, ""
    for raw in markdown.splitlines():
        if raw.lstrip().startswith("```"):
            in_code, pending = not in_code, ""
            fence = raw.strip()[3:].strip()
            shell, console = in_code and fence in SHELL_FENCES, in_code and fence == "console"
            continue
        if not in_code:
            continue
        if console:
            if raw.startswith("$ "):
                found.extend(_commands_in(raw[2:].strip()))
            continue
        if not shell:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        found.extend(_commands_in(line))
    return found


def inline_command_lines(markdown: str) -> list[str]:
    """Every ``drcn-*`` command written inline in the prose of ``markdown``, a code span with at least one argument
    and no ``...`` (e.g. ``drcn-run --segment 5 film.mkv``); often a part of a command (``drcn-export --triton``),
    checked with ``check_command(line, partial=True)``."""
    found, in_code = [], False
    for raw in markdown.splitlines():
        if raw.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            for span in re.findall(r"`((?:\.venv/bin/)?drcn-[a-z]+ [^`]+)`", raw):
                if "..." not in span:
                    found.extend(_commands_in(span))
    return found


def _commands_in(line: str) -> list[str]:
    found = []
    for part in line.split("&&"):
        part = part.split(" #")[0].split("|")[0].split(" > ")[0].split(" >> ")[0].split(" >/")[0].strip()
        part = part[:-1].strip() if part.endswith("&") else part
        words = part.split()
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]                    # VAR=value drcn-...
        if words and words[0].rsplit("/", 1)[-1].startswith("drcn-"):
            found.append(" ".join(words))
    return found


PARTIAL = ("the following arguments are required", "expected one argument", "expected at least one argument")


def check_command(line: str, partial: bool = False) -> None:
    """Parse ``line`` (one ``drcn-*`` command) with its script's real parser; a :class:`DrcnError` naming the
    command and what the parser refused, if it uses an option or value the parser does not take. ``partial``: the
    line may be part of a command (a mention in prose): missing arguments, or an option named without its value at
    the end, are not refused; an unknown option or a bad value still is."""
    words = shlex.split(line)
    name = words[0].rsplit("/", 1)[-1]
    parser = parser_of(name)
    errors: list[str] = []

    def refuse(message: str) -> None:
        errors.append(message)
        raise SystemExit(2)

    for each in _all_parsers(parser):
        each.error = refuse      # the real parser, its refusal kept as a message instead of printed
    try:
        parser.parse_args(words[1:])
    except SystemExit as exc:
        if partial and errors:
            message = errors[0]
            if message.startswith(PARTIAL[0]) or (message.startswith(f"argument {words[-1]}")
                                                  and any(what in message for what in PARTIAL[1:])):
                return
        if exc.code not in (0, None) or errors:
            raise DrcnError(f"{line}: {errors[0] if errors else 'refused by the parser'}") from None
