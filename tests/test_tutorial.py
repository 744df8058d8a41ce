"""The tutorial runs, and the errors the docs quote are what the commands print. Every command of
``docs/tutorial.md`` is run here, in order, in an empty folder, as doctests run a docstring's examples, and what it
prints is checked against the output the page shows.

The page's conventions, read here:

- a ``console`` block holds commands (``$ ...``), each followed by the output it shows: each shown line must be
  found in what the command printed, in order (other lines may come between); ``...`` inside a line stands for any
  text, and a line of ``...`` alone for any lines;
- a ``python`` block is run with this interpreter; a ``text`` block right after it is its output, compared the same
  way;
- a command ending in `` &`` is started in the background and stopped when the page is done;
- ``bash`` blocks (the install, ``cd``) are shown, not run: the suite's own install stands for them.

The server the page starts listens on 127.0.0.1 (drcn-serve's default), on a free port put in place of 8000.

The guides and the troubleshooting page quote errors the same way, in ``console`` blocks: each block is run in an
empty folder of its own, and a command whose shown output says ``error`` must end with a code other than 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of ``text``, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def steps(text: str) -> list[tuple[str, str, list[str]]]:
    """The page as (kind, code, expected output lines): kind "shell" or "python"."""
    found, fenced = [], blocks(text)
    for i, (language, body) in enumerate(fenced):
        if language == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, *shown = chunk.rstrip("\n").split("\n")
                found.append(("shell", command, shown))
        elif language == "python":
            after = fenced[i + 1] if i + 1 < len(fenced) and fenced[i + 1][0] == "text" else ("text", "")
            found.append(("python", body, after[1].rstrip("\n").split("\n") if after[1] else []))
    return found


def shown_in(shown: list[str], printed: str) -> str | None:
    """None where every shown line is found in ``printed``, in order; else the first one missing."""
    lines, at = printed.splitlines(), 0
    for line in shown:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("...")))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return line
        at += 1
    return None


def test_the_shown_output_is_matched_in_order_with_ellipses():
    printed = "a: one\nnoise\nb: two three\nc"
    assert shown_in(["a: ...", "...", "b: ... three"], printed) is None
    assert shown_in(["b: two three", "a: one"], printed) == "a: one"        # order counts
    assert shown_in(["b: two"], printed) == "b: two"                        # a whole line, not a prefix
    parsed = steps("```console\n$ echo hi\nhi\n$ true\n```\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n")
    assert parsed == [("shell", "echo hi", ["hi"]), ("shell", "true", []), ("python", "print(1)\n", ["1"])]


def _environment(tmp_path: Path) -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DRCN_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


QUOTED = sorted(page for page in DOCS.rglob("*.md") if page != TUTORIAL and "```console" in page.read_text())


@pytest.mark.parametrize("page", QUOTED, ids=[str(p.relative_to(DOCS)) for p in QUOTED])
def test_the_errors_a_page_quotes_are_what_the_commands_print(page, tmp_path):
    env = _environment(tmp_path)
    quoted = [body for language, body in blocks(page.read_text()) if language == "console"]
    for n, body in enumerate(quoted):
        work = tmp_path / f"block{n}"
        work.mkdir()
        for kind, command, shown in steps(f"```console\n{body}```\n"):
            done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=300)
            printed = done.stdout + done.stderr
            if any("error" in line for line in shown):
                assert done.returncode != 0, f"{page.name}: {command!r} ended with 0:\n{printed[-2000:]}"
            assert "Traceback" not in printed, f"{page.name}: {command!r} printed a traceback:\n{printed[-3000:]}"
            missing = shown_in(shown, printed)
            assert missing is None, (f"{page.name}: {command!r}: the page shows {missing!r}, not in what it printed:"
                                     f"\n{printed[-2000:]}")


def test_the_pages_that_quote_errors_are_found():
    names = {p.name for p in QUOTED}
    assert {"troubleshooting.md", "images.md", "video.md"} <= names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_every_command_of_the_tutorial_runs_and_prints_what_the_page_shows(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    pytest.importorskip("tensorrt_rtx", reason="the tutorial's engine step builds with TensorRT for RTX")
    if shutil.which("curl") is None:
        pytest.skip("the tutorial calls the server with curl, which this machine lacks")
    page = steps(TUTORIAL.read_text())
    assert len(page) >= 12, "the tutorial lost its steps"
    port = str(_free_port())
    work = tmp_path / "first-hour"
    work.mkdir()
    env = _environment(tmp_path)
    background: list[subprocess.Popen] = []
    try:
        for kind, code, shown in page:
            code = code.replace("8000", port)
            if kind == "shell" and code.endswith(" &"):
                background.append(subprocess.Popen(code[:-2], shell=True, cwd=work, env=env, start_new_session=True,
                                                   stdout=open(tmp_path / f"background{len(background)}.log", "w"),
                                                   stderr=subprocess.STDOUT))
                continue
            argv = [sys.executable, "-c", code] if kind == "python" else ["bash", "-c", code]
            done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
            printed = done.stdout + done.stderr
            assert done.returncode == 0, f"{code!r} ended with {done.returncode}:\n{printed[-3000:]}"
            missing = shown_in(shown, printed)
            assert missing is None, f"{code!r}: the page shows {missing!r}, not in what it printed:\n{printed[-3000:]}"
    finally:
        for process in background:
            _stop(process)
    assert (work / "frames_x2").is_dir() and (work / "clip_x2.mp4").is_file() and (work / "model.engine").is_file()
