"""Faults a real machine has, met by every command the same way: a truncated or foreign input file is one line
naming it (exit != 0, no traceback), an unreadable folder entry is reported by name, a destination that cannot be
written is refused before the work, and a failed command leaves nothing behind."""

from __future__ import annotations

import os
import time

import pytest

from conftest import run_cli

pytest.importorskip("torch")


def _one_line(result, *words):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def truncated_weights(tmp_path, tiny_model_files):
    weights = tmp_path / "cut.safetensors"
    data = tiny_model_files[0].read_bytes()
    weights.write_bytes(data[: len(data) * 2 // 3])   # the header survives, the tensors do not
    return weights


@pytest.mark.parametrize("module,args", [
    ("drcn.export.cli", ["--onnx", "{tmp}/m.onnx"]),
    ("drcn.runtime.run_cli", ["{frames}", "--backend", "torch", "--tile", "16"]),
    ("drcn.benchmarks.cli", ["quality", "--method", "torch"]),
])
def test_a_truncated_weights_file_is_one_line_in_every_command(tmp_path, truncated_weights, image_folder, module,
                                                               args):
    args = [a.format(tmp=tmp_path, frames=image_folder) for a in args]
    result = run_cli(module, *args, "--weights", str(truncated_weights), cwd=tmp_path)
    _one_line(result, str(truncated_weights), "cut short")
    assert not (tmp_path / "m.onnx").exists()
    assert not (image_folder.parent / f"{image_folder.name}_x2").exists()


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2048))
    line = _one_line(run_cli("drcn.train.cli", "--resume", str(junk), cwd=tmp_path), f"--resume {junk}",
                     "not a drcn checkpoint")
    assert "weights_only" not in line
    import argparse

    import torch

    # a pickle that names a class to construct (what code execution through a checkpoint needs): refused, never run
    torch.save({"format": 1, "thing": argparse.Namespace(a=1)}, tmp_path / "foreign.pt")
    line = _one_line(run_cli("drcn.train.cli", "--resume", str(tmp_path / "foreign.pt"), cwd=tmp_path),
                     "not a drcn checkpoint")
    assert "weights_only" not in line
    torch.save({"format": 1, "step": 3}, tmp_path / "partial.pt")   # plain values, but not what drcn writes
    _one_line(run_cli("drcn.train.cli", "--resume", str(tmp_path / "partial.pt"), cwd=tmp_path),
              "not a drcn checkpoint", "model_config")


def test_bad_numbers_leave_no_training_folder(tmp_path, image_folder):
    for value in ("-1", "nan"):
        result = run_cli("drcn.train.cli", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--lr",
                         value, cwd=tmp_path)
        _one_line(result, "--lr")
    assert not (tmp_path / "run").exists()


def test_dangling_and_looping_links_in_a_frame_folder_are_reported_by_name(tmp_path, image_folder,
                                                                           tiny_model_files):
    (image_folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (image_folder / "loop.png").symlink_to(image_folder / "loop.png")
    result = run_cli("drcn.runtime.run_cli", str(image_folder), "--onnx", str(tiny_model_files[1]), "--backend",
                     "onnxruntime", "--tile", "16", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "failed: gone.png:" in result.stderr and "does not exist" in result.stderr
    assert "failed: loop.png:" in result.stderr and "symbolic link loop" in result.stderr
    out = image_folder.parent / f"{image_folder.name}_x2"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_triton_destination_is_checked_before_the_export(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    start = time.time()
    result = run_cli("drcn.export.cli", "--triton", str(blocker / "models"), "--onnx", str(tmp_path / "m.onnx"),
                     cwd=tmp_path)
    _one_line(result, "--triton", "cannot write here")
    assert time.time() - start < 8, "refused only after exporting"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failed_repository_write_leaves_the_old_repository(tmp_path, tiny_model_files):
    """Writing the Triton repository over an existing one with a full disk keeps the old model and config."""
    import subprocess
    import sys

    from drcn.export.triton import TritonRequest, write_repository
    from drcn.onnx_meta import read_onnx_info

    info = read_onnx_info(tiny_model_files[1])
    model_dir = write_repository(tiny_model_files[1], info, TritonRequest(tmp_path / "models", tile=64))
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    size = (model_dir / "1" / "model.onnx").stat().st_size
    script = ("import resource, sys; from pathlib import Path\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size // 2}, {size // 2}))\n"
              "from drcn.export.triton import TritonRequest, write_repository\n"
              "from drcn.onnx_meta import read_onnx_info\n"
              "from drcn.errors import DrcnError\n"
              f"onnx = Path({str(tiny_model_files[1])!r})\n"
              "try:\n"
              f"    write_repository(onnx, read_onnx_info(onnx), TritonRequest(Path({str(tmp_path / 'models')!r}), tile=128))\n"
              "except DrcnError as exc:\n"
              "    print(exc); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3 and "disk is full" in result.stdout, result.stdout + result.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
