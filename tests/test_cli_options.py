"""Every option of every command takes bad values the same way: exit 2, one line that names the option, no traceback.

The commands are read from pyproject.toml's [project.scripts], so a new command or a new option is covered without
anyone remembering to add it here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD_VALUES = ["-1", "0", "nan", "inf", "-inf", "word", ""]


def _commands() -> list[tuple[str, str]]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return sorted((name, target.split(":")[0]) for name, target in scripts.items())


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(argv prefix, parser) for the parser and every sub-command's parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def _required_argv(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for what the parser requires, so that only the option under test can fail."""
    argv = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings and action.nargs not in ("?", "*"):
            argv.append("placeholder")
        elif action.option_strings and action.required:
            argv += [action.option_strings[-1], "placeholder"]
    return argv


def _options():
    for command, module in _commands():
        parser = importlib.import_module(module).build_parser()
        for path, sub in _parsers(parser):
            for action in sub._actions:
                if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction):
                    yield pytest.param(command, module, path, action.option_strings[-1],
                                       id=f"{command} {' '.join(path)} {action.option_strings[-1]}".replace("  ", " "))


def _numbers(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def _find(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("command,module,path,option", list(_options()))
def test_every_option_refuses_bad_values_in_one_line(command, module, path, option):
    parser = importlib.import_module(module).build_parser()
    sub = _find(parser, path)
    action = next(a for a in sub._actions if option in a.option_strings)
    numeric_default = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
    if action.type is None and action.choices is None:
        assert not numeric_default, f"{command} {option}: a numeric option without a validator from drcn.argtypes"
        return  # a free-form string (a path, a name): nothing to validate here
    assert action.type not in (int, float), f"{command} {option}: use a validator from drcn.argtypes, not {action.type}"
    for value in BAD_VALUES:
        argv = [*path, *_required_argv(sub), f"{option}={value}"]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:
                lines = stderr.getvalue().strip().splitlines()
                assert exc.code == 2, (argv, exc.code)
                assert len(lines) == 1 and option in lines[0] and "Traceback" not in lines[0], (argv, lines)
                continue
        # Accepted: then it is a meaningful value, never nan or infinity slipping through.
        parsed = getattr(args, action.dest)
        for number in _numbers(parsed):
            assert math.isfinite(number), f"{command} {option}={value} was accepted as {parsed!r}"


def test_the_walk_sees_every_command_and_the_numeric_options():
    seen = {p.values[0] for p in _options()}
    assert seen == {name for name, _ in _commands()}
    ids = {p.id for p in _options()}
    for expected in ("drcn-trt build --workspace", "drcn-train --lr", "drcn-run --tile", "drcn-export --opset",
                     "drcn-bench latency --repeat"):
        assert expected in ids, sorted(ids)
