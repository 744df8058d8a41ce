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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with --strict (a broken link, a missing page or a warning fails it)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_gen_files")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_site_builds_strictly(site):
    for name in cli_reference.console_scripts():
        page = (site / "reference" / "cli" / name / "index.html").read_text()
        assert f"<code>{name}</code>" in page
    http = (site / "reference" / "http" / "index.html").read_text()
    assert "/v1/upscale" in http and "/v2/models/{name}/infer" in http
    assert "<td>507</td>" in http and "<td>429</td>" in http          # the statuses as a table
    assert "Upscaler" in (site / "reference" / "python-api" / "index.html").read_text()
    results = (site / "results" / "index.html").read_text()
    assert "By task, with the machine each was measured on" in results and "serve_jobs.md" in results


def test_the_built_site_names_no_machine_folder_and_no_internal_talk(site):
    found = []
    for page in site.rglob("*.html"):
        text = re.sub(r"<[^>]+>", " ", page.read_text(errors="replace"))
        found += [f"{page.relative_to(site)}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
        found += [f"{page.relative_to(site)}: {m.group(0)}" for m in INTERNAL.finditer(text)]
    assert not found, "\n".join(found[:20])


FIGURED = ("", "guides/images/", "guides/video/", "guides/cpu/", "guides/serving/")


def test_the_pages_show_their_figures_in_a_real_browser(site, browser, tmp_path):
    """Headless Chromium opens the home page, the guides with figures and the results index from a loopback server:
    every image loads (a broken one has no natural width), each of those pages shows one at least. Screenshots go to
    $DRCN_SCREENSHOTS where set (for a person to look at), else to a temporary folder."""
    import functools
    import http.server
    import threading

    from selenium.webdriver.common.by import By

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = Path(os.environ.get("DRCN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1600)
    try:
        for path in (*FIGURED, "results/"):
            browser.get(f"http://127.0.0.1:{server.server_address[1]}/{path}")
            images = browser.find_elements(By.CSS_SELECTOR, "article img")
            broken = [i.get_attribute("src") for i in images
                      if not browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
            assert not broken, f"/{path}: images that did not load: {broken}"
            if path in FIGURED:
                assert images, f"/{path}: no figure"
            browser.save_screenshot(str(shots / f"{path.strip('/').replace('/', '_') or 'home'}.png"))
    finally:
        server.shutdown()


def _commands() -> list[tuple[str, str]]:
    return [(str(path.relative_to(ROOT)), line) for path in MARKDOWN
            for line in cli_reference.command_lines(path.read_text())]


def test_every_command_line_in_the_docs_and_readme_uses_only_options_its_parser_has():
    commands = _commands()
    assert len(commands) > 40 and {line.split()[0].rsplit("/", 1)[-1] for _, line in commands} >= {
        "drcn-run", "drcn-serve", "drcn-export", "drcn-trt", "drcn-bench", "drcn-train", "drcn-qat", "drcn-average"}
    inline = [(str(path.relative_to(ROOT)), line) for path in MARKDOWN
              for line in cli_reference.inline_command_lines(path.read_text())]
    assert len(inline) > 20
    refused = []
    for where, line, partial in [(w, c, False) for w, c in commands] + [(w, c, True) for w, c in inline]:
        try:
            cli_reference.check_command(line, partial=partial)
        except Exception as exc:  # noqa: BLE001 - every refusal is collected and shown at once
            refused.append(f"{where}: {exc}")
    assert not refused, "\n".join(refused)


def test_an_inline_mention_may_be_part_of_a_command_but_not_name_a_wrong_option():
    found = cli_reference.inline_command_lines("Use `drcn-export --triton` or `drcn-run --segment 5 film.mkv`; not "
                                               "`drcn-run` alone, nor `drcn-run --segment ...`.\n```\n`drcn-x y`\n```")
    assert found == ["drcn-export --triton", "drcn-run --segment 5 film.mkv"]
    for line in found:
        cli_reference.check_command(line, partial=True)
    with pytest.raises(Exception, match="--tiles"):
        cli_reference.check_command("drcn-run --tiles 5", partial=True)
    with pytest.raises(Exception, match="expected one argument"):
        cli_reference.check_command("drcn-export --triton")


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
        heading = re.match(r"#+ `(drcn-[a-z]+(?: [a-z]+)*)`", line)
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
        if path.name == "tutorial.md":
            continue                  # its blocks run in order with its commands (tests/test_tutorial.py)
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

