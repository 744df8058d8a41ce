"""The core's atomic writer: all-or-nothing multi-file artefacts, nothing left by a failure, stale temporaries of
dead processes swept (and a live process's left alone), destinations checked without creating anything."""

import os
import subprocess
import sys

import pytest

from drcn import atomic
from drcn.errors import DrcnError


def test_an_artefact_appears_whole_in_the_order_given(tmp_path, monkeypatch):
    order = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (order.append(os.path.basename(b)), real_replace(a, b)))
    with atomic.atomic_outputs(tmp_path / "m.engine", tmp_path / "m.engine.json") as (engine, sidecar):
        engine.write_bytes(b"plan")
        sidecar.write_text("{}")
        assert not (tmp_path / "m.engine").exists(), "nothing is visible before the block ends"
    assert order == ["m.engine", "m.engine.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def test_a_failure_keeps_the_old_files_and_removes_the_folders_it_made(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_outputs(tmp_path / "old.bin", tmp_path / "new" / "deep" / "x.txt") as (a, b):
            a.write_bytes(b"new")
            b.write_text("x")
            raise RuntimeError("boom")
    assert (tmp_path / "old.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
              "from drcn import atomic\nfrom drcn.errors import DrcnError\n"
              "try:\n"
              f"    atomic.write_bytes({str(tmp_path / 'big.bin')!r}, bytes(10_000))\n"
              "except DrcnError as exc:\n    print(exc); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and "big.bin: the disk is full" in result.stdout, result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_processes_go_and_live_ones_stay(tmp_path):
    target = tmp_path / "clip_x2.mp4"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = atomic._host()
        stale = tmp_path / f".clip_x2.mp4.{host}-{dead.pid}.abcd1234.tmp.mp4"
        old_style = tmp_path / ".clip_x2.mp4.k2j4h5g6.tmp.mp4"        # written before temporaries named their owner
        running = tmp_path / f".clip_x2.mp4.{host}-{live.pid}.efgh5678.tmp.mp4"
        other = tmp_path / ".other.mp4.x-1.abcd1234.tmp.mp4"
        for path in (stale, old_style, running, other):
            path.write_bytes(b"part")
        assert atomic.remove_stale_temps(target) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name])
    finally:
        live.kill()
        live.wait()


def test_destinations_are_checked_without_creating_anything(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    atomic.check_destination(tmp_path / "a" / "b" / "out.png")
    atomic.check_destination(tmp_path / "new", folder=True)
    with pytest.raises(DrcnError, match="--engine .*folder: is a folder"):
        atomic.check_destination(tmp_path / "folder", "--engine")
    with pytest.raises(DrcnError, match="cannot write here"):
        atomic.check_destination(tmp_path / "file" / "out.png")
    with pytest.raises(DrcnError, match="exists and is not a folder"):
        atomic.check_destination(tmp_path / "file", folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
