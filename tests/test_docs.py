"""Docs that cannot drift: the site builds with --strict (no broken link, no missing page); every
drcn-* command line in the docs and the README parses with its real parser; the reference lists exactly each
parser's options; the guides' Python blocks run (or, where marked compile-only, compile); results/ holds only what
was measured, each file named with the command that made it; nothing a user reads names a folder of the machine
that wrote it or talks to the project's own authors; the README's relative links resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drcn import cli_reference

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
MARKDOWN = [ROOT / "README.md", *PAGES]


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_gen_files")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in cli_reference.console_scripts():
        page = (tmp_path / "site" / "reference" / "cli" / name / "index.html").read_text()
        assert f"<code>{name}</code>" in page
    http = (tmp_path / "site" / "reference" / "http" / "index.html").read_text()
    assert "/v1/upscale" in http and "/v2/models/{name}/infer" in http
    assert "Upscaler" in (tmp_path / "site" / "reference" / "python-api" / "index.html").read_text()


def _commands() -> list[tuple[str, str]]:
    return [(str(path.relative_to(ROOT)), line) for path in MARKDOWN
            for line in cli_reference.command_lines(path.read_text())]


def test_every_command_line_in_the_docs_and_readme_uses_only_options_its_parser_has():
    commands = _commands()
    assert len(commands) > 40 and {line.split()[0].rsplit("/", 1)[-1] for _, line in commands} >= {
        "drcn-run", "drcn-serve", "drcn-export", "drcn-trt", "drcn-bench", "drcn-train", "drcn-qat", "drcn-average"}
    refused = []
    for where, line in commands:
        try:
            cli_reference.check_command(line)
        except Exception as exc:  # noqa: BLE001 - every refusal is collected and shown at once
            refused.append(f"{where}: {exc}")
    assert not refused, "\n".join(refused)


def test_a_renamed_option_would_fail_the_check():
    cli_reference.check_command("drcn-run --tile 256 frames")
    with pytest.raises(Exception, match="--tiles"):
        cli_reference.check_command("drcn-run --tiles 256 frames")
    with pytest.raises(Exception, match="invalid choice"):
        cli_reference.check_command("drcn-bench qualty Set5")
    assert cli_reference.command_lines("```bash\nA=1 .venv/bin/drcn-run \\\n  --tile 64 x  # note\nls | drcn-x\n```") \
        == [".venv/bin/drcn-run --tile 64 x"]
    assert cli_reference.command_lines("```text\ndrcn-run: 5 frame(s) in 2.0 s\n```") == []     # output, not commands


@pytest.mark.parametrize("name", sorted(cli_reference.console_scripts()))
def test_the_reference_page_lists_exactly_the_parsers_options(name):
    text = cli_reference.render(name)
    parser = cli_reference.parser_of(name)
    listed = set()
    section = ""
    for line in text.splitlines():
        heading = re.match(r"#+ `(drcn-[a-z]+(?: [a-z]+)?)`", line)
        if heading:
            section = heading.group(1)[len(name) + 1:]
        elif line.startswith("| `-"):
            flags = re.findall(r"`(-[-\w]+)`", line.split(" | ")[0])
            listed |= {f"{section} {f}".strip() for f in flags}
    assert listed == cli_reference.option_strings(parser)
    nav = (ROOT / "mkdocs.yml").read_text()
    assert f"reference/cli/{name}.md" in nav


def _python_blocks() -> list[tuple[str, str, bool]]:
    """(page, code, run) of every ```python block of the docs; run is False where an HTML comment before it says
    compile-only (it needs hardware, a server or a library the tests do not have)."""
    blocks = []
    for path in PAGES:
        text = path.read_text()
        for match in re.finditer(r"(<!-- compile-only[^>]*-->\n)?```python\n(.*?)```", text, re.S):
            blocks.append((str(path.relative_to(ROOT)), match.group(2), match.group(1) is None))
    return blocks


def test_the_guides_python_blocks_run_or_compile(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert any(run for _, _, run in blocks) and any(not run for _, _, run in blocks)
    monkeypatch.chdir(tmp_path)
    for where, code, run in blocks:
        compiled = compile(code, where, "exec")
        if run:
            pytest.importorskip("onnxruntime")
            exec(compiled, {"__name__": "__docs__"})


def test_results_hold_only_what_was_measured_each_with_its_command():
    results = ROOT / "benchmarks" / "results" / "cpu"
    scripts = [p.name for p in results.iterdir() if p.suffix in (".py", ".sh")]
    assert not scripts, f"measuring scripts belong in benchmarks/studies/: {scripts}"
    index = (results / "README.md").read_text()
    unnamed = [p.name for p in results.iterdir() if p.name != "README.md" and p.name not in index
               and p.with_suffix(".md").name not in index]
    assert not unnamed, f"benchmarks/results/cpu/README.md does not say which command made: {unnamed}"
    run = (ROOT / "benchmarks" / "studies" / "run.sh").read_text()
    for script in re.findall(r"benchmarks/studies/([\w.]+)", run):
        assert (ROOT / "benchmarks" / "studies" / script).is_file(), script


def test_the_readme_is_short_and_keeps_the_two_quickstart_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert ".venv/bin/pip install -e '.[cpu]' && .venv/bin/drcn-run --make-samples frames" in readme
    assert ".venv/bin/pip install torch==2.13.0 -e '.[dev]' && .venv/bin/python -m pytest -q" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest -q" in ci


# Folders of whoever measured or wrote something: a user's copy has none of them. (/etc and /opt in a deployment
# example are the reader's own.)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|tmp|home|root|Users|var/folders)/[^\s)\]\"']+")
INTERNAL = re.compile(r"\bissue #?\d+|\blent\b|\bthis session\b|\bthe CEO\b", re.IGNORECASE)


def _read_by_users() -> list[Path]:
    results = [p for p in (ROOT / "benchmarks" / "results").rglob("*") if p.suffix in (".md", ".json", ".txt")]
    return [*MARKDOWN, ROOT / "weights" / "README.md", *sorted(results)]


def test_nothing_a_user_reads_names_a_folder_of_the_machine_that_wrote_it():
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in _read_by_users()
             for m in MACHINE_PATH.finditer(p.read_text(errors="replace"))]
    assert not found, "\n".join(found[:20])


def test_nothing_a_user_reads_talks_to_the_projects_own_authors():
    sources = [p for folder in ("drcn", "runtime", "export", "train", "benchmarks")
               for p in (ROOT / folder).rglob("*.py")]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in [*_read_by_users(), *sources]
             for m in INTERNAL.finditer(p.read_text(errors="replace"))]
    assert not found, "\n".join(found[:20])
    assert INTERNAL.search("as filed in issue 26") and MACHINE_PATH.search("model (/work/main/weights/m.onnx)")


def test_every_relative_link_of_the_readme_resolves_to_a_file_in_the_repository():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(relative) >= 5, relative
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, missing

