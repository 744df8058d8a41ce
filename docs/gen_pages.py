"""Pages made at build time (mkdocs-gen-files), never written by hand: the reference of every console script from
its own argparse parser, the HTTP routes from the application, the model card and the measured results copied from
where they live in the repository (their links rewritten for the site)."""

import re
from pathlib import Path

import mkdocs_gen_files

from drcn import cli_reference

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def site_links(text: str, depth: int) -> str:
    """Repository-relative links of a copied page -> links inside the site (``depth``: folders below docs/)."""
    up = "../" * depth
    text = re.sub(r"\]\((?:\.\./)*benchmarks/results/cpu/README\.md\)", f"]({up}results/index.md)", text)
    text = re.sub(r"\]\((?:\.\./)*benchmarks/results/cpu/([^)]*)\)", rf"]({up}results/cpu/\1)", text)
    # the measuring scripts are not pages: named by their path in the repository
    text = re.sub(r"\[[^\]]*\]\((?:\.\./)*(?:benchmarks/)?studies/([^)]*)\)", r"`benchmarks/studies/\1`", text)
    return text


# -- the console scripts ----------------------------------------------------------------------------------------
scripts = cli_reference.console_scripts()
with mkdocs_gen_files.open("reference/cli/index.md", "w") as index:
    index.write("# Command-line reference\n\nGenerated from each command's own argparse parser when the site is "
                "built, so it lists exactly the options the installed version takes.\n\n| command | module |\n"
                "|---|---|\n")
    for name, target in scripts.items():
        index.write(f"| [`{name}`]({name}.md) | `{target}` |\n")
        with mkdocs_gen_files.open(f"reference/cli/{name}.md", "w") as page:
            page.write(cli_reference.render(name) + "\n")

# -- the HTTP routes ----------------------------------------------------------------------------------------------
import warnings  # noqa: E402

with warnings.catch_warnings():   # Ray Serve's own pydantic deprecation warnings are not the docs' business
    warnings.simplefilter("ignore")
    from drcn.runtime.serve import app as served  # noqa: E402  (imports Ray Serve and FastAPI: the serve extra)

with mkdocs_gen_files.open("reference/http.md", "w") as page:
    page.write("# HTTP routes of `drcn-serve`\n\nGenerated from the application's route table when the site is "
               "built.\n\n| method | route | what |\n|---|---|---|\n")
    def routes(table):
        """Every route, also inside the router Ray Serve's ingress wraps the application's in."""
        for route in table:
            inner = getattr(route, "original_router", None)
            yield from routes(inner.routes) if inner is not None else [route]

    listed = [r for r in routes(served.app.routes) if getattr(r, "methods", None)]
    if not listed:
        raise RuntimeError("no HTTP routes found in drcn.runtime.serve.app: the reference would be empty")
    for route in sorted(listed, key=lambda r: r.path):
        doc = (route.endpoint.__doc__ or "").strip().split("\n")[0]
        page.write(f"| {', '.join(sorted(route.methods))} | `{route.path}` | {doc} |\n")
    from drcn.runtime.serve.http import STATUSES  # noqa: E402

    page.write("\n## Statuses\n\nEvery error answers with its status and one JSON line, `{\"error\": \"...\"}` (a "
               "500 also carries the `request_id` the server logged it under).\n\n| status | when |\n|---|---|\n")
    for status, when in STATUSES:
        page.write(f"| {status} | {when} |\n")

# -- the model card and the measured results ----------------------------------------------------------------------
card = (ROOT / "weights" / "README.md").read_text()
with mkdocs_gen_files.open("model-card.md", "w") as page:
    page.write(re.sub(r"\]\((drcn_[\w.]+\.png)\)", r"](img/\1)", site_links(card, 0)))
for curves in sorted((ROOT / "weights").glob("*.png")):
    with mkdocs_gen_files.open(f"img/{curves.name}", "wb") as image:
        image.write(curves.read_bytes())
with mkdocs_gen_files.open("img/compare_astronaut_x2.png", "wb") as image:
    image.write((RESULTS / "compare_astronaut_x2.png").read_bytes())
from drcn.benchmarks.machine import read_header  # noqa: E402

TASKS = {"quality": "Quality (Y-PSNR, per-pixel deviation)", "recursions": "Quality (Y-PSNR, per-pixel deviation)",
         "temporal": "Quality (Y-PSNR, per-pixel deviation)", "latency": "Speed", "sweep": "Speed", "paths": "Speed",
         "framegraph": "Speed", "serve": "Serving over HTTP", "jobs": "Video jobs over HTTP",
         "compare": "Figures"}


def measured_index() -> str:
    """The results index from the headers the benchmarks write (what, machine, date), grouped by task."""
    found: dict[str, list[str]] = {}
    for path in sorted((RESULTS / "cpu").glob("*.md")):
        header = read_header(path)
        if header is None:
            continue
        words = header["command"].split()
        task = TASKS.get(words[1] if len(words) > 1 else "", "Other")
        found.setdefault(task, []).append(f"| [`{path.name}`](cpu/{path.name}) | `{header['command']}` | "
                                          f"{header['cpu']}, {header['isa']}, {header['cores']} cores | "
                                          f"{header['date']} |")
    if not found:
        raise RuntimeError("no result file carries a machine header: the generated index would be empty")
    text = ("## By task, with the machine each was measured on\n\nGenerated when the site is built from the header "
            "each `drcn-bench` table opens with (its CPU, ISA level, cores, versions, date and command).\n\n")
    for task in sorted(found):
        rows = "\n".join(found[task])
        text += f"### {task}\n\n| file | command | machine | date |\n|---|---|---|---|\n{rows}\n\n"
    return text + "## Every file, with what it shows\n\n"


for path in sorted((RESULTS / "cpu").iterdir()):
    if path.name == "README.md":
        with mkdocs_gen_files.open("results/index.md", "w") as page:
            text = site_links(path.read_text().replace("](../../studies/", "](benchmarks/studies/"), 1)
            text = re.sub(r"\]\((?!https?:|\.\./)([^)]+)\)", r"](cpu/\1)", text)
            title, _, rest = text.partition("\n")
            page.write(f"{title}\n\n{measured_index()}{rest.lstrip()}")
    else:
        with mkdocs_gen_files.open(f"results/cpu/{path.name}", "wb") as copy:
            copy.write(path.read_bytes())
