"""The layer rule of DESIGN.md, enforced: every import in the package (inside functions too) points down.

    benchmarks/          may use everything below
    export/              core + runtime
    train/   runtime/    core only
    drcn/ (core)         no stage package; torch only in the model/weights code that needs it
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"drcn": "core", "runtime": "runtime", "train": "train", "export": "export", "benchmarks": "benchmarks",
           "weights": "core"}
SUBPACKAGE = {"drcn.runtime": "runtime", "drcn.train": "train", "drcn.export": "export",
              "drcn.benchmarks": "benchmarks", "drcn.shipped": "core"}
ALLOWED = {"core": {"core"}, "runtime": {"core", "runtime"}, "train": {"core", "train"},
           "export": {"core", "runtime", "export"}, "benchmarks": {"core", "runtime", "train", "export", "benchmarks"}}
# torch is a heavy optional library: in the core only the model and the code that loads/places it may import it,
# and the deployment layer only in its PyTorch backend.
TORCH_ALLOWED = {"drcn/model.py", "drcn/frame_model.py", "drcn/weights.py", "drcn/devices.py",
                 "runtime/backends/torch_backend.py"}


def layer_of_module(name: str) -> str | None:
    if name != "drcn" and not name.startswith("drcn."):
        return None
    for prefix, layer in SUBPACKAGE.items():
        if name == prefix or name.startswith(prefix + "."):
            return layer
    return "core"


def imports(path: Path):
    """(line, module) for every import in the file, at any depth; ``from drcn import x`` counts as drcn.x."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("drcn", *SUBPACKAGE):  # the names may be modules of another layer
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"
            else:
                yield node.lineno, node.module


def source_files():
    for folder in FOLDERS:
        yield from sorted((REPO / folder).rglob("*.py"))


# The one import that points up: the package's front door names the application API (drcn.Upscaler, drcn.upscale)
# lazily, in a module __getattr__; no core code uses it.
FRONT_DOOR = {("drcn/__init__.py", "drcn.runtime.api")}


def violations() -> list[str]:
    found = []
    for path in source_files():
        rel = path.relative_to(REPO).as_posix()
        layer = FOLDERS[rel.split("/")[0]]
        for line, module in imports(path):
            target = layer_of_module(module)
            if (rel, module) in FRONT_DOOR:
                continue
            if target is not None and target not in ALLOWED[layer]:
                found.append(f"{rel}:{line}: {layer} imports {module} ({target})")
            if module.split(".")[0] == "torch" and rel not in TORCH_ALLOWED and layer in ("core", "runtime"):
                found.append(f"{rel}:{line}: {layer} imports torch")
    return found


def test_every_import_points_down_the_layers():
    assert violations() == []


def test_the_checker_sees_imports_inside_functions(tmp_path, monkeypatch):
    """A violation hidden in a function body is found (the rule cannot rot silently)."""
    fake = tmp_path / "runtime"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from drcn.benchmarks import tables\n    import torch\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    monkeypatch.setitem(globals(), "FOLDERS", {"runtime": "runtime"})
    assert violations() == ["runtime/bad.py:2: runtime imports drcn.benchmarks.tables (benchmarks)",
                            "runtime/bad.py:3: runtime imports torch"]


@pytest.mark.parametrize("module,layer", [("drcn.matlab", "core"), ("drcn.runtime.tiling", "runtime"),
                                          ("drcn.export", "export"), ("numpy", None)])
def test_layer_of_module(module, layer):
    assert layer_of_module(module) == layer
