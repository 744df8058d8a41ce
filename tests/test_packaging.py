"""A plain (non-editable) install carries the shipped model as package data."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_contains_the_shipped_model(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"   # a copy: the build leaves build/ and *.egg-info where it runs
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", ".hypothesis", "runs", "tests"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("drcn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("drcn/shipped/__init__.py", "drcn/shipped/drcn_f64_d9.safetensors", "drcn/shipped/drcn_f64_d9.onnx",
                 "drcn/shipped/README.md", "drcn/evaluation.py", "drcn/runtime/run_cli.py"):
        assert name in names, name
    # every source module of every subpackage is in the wheel (a package missing from pyproject would be lost)
    for module in REPO.glob("runtime/**/*.py"):
        name = "drcn/runtime/" + module.relative_to(REPO / "runtime").as_posix()
        assert name in names, name
    assert not any(n.endswith(".png") for n in names), "training curves are not package data"
