"""What a video holds and what decodes, with real processes: a clip with duplicate timestamps, one cut at 60% of its
bytes and one with 32 KiB of noise over its middle, each run in segments and with ``--segment 0`` (one pass), and
compared with each other and with what was encoded: the same frames written, the loss reported (how many frames,
seconds, where), the same exit code. A killed run's leftovers, the join's frame count and the disk check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")

import generated_videos  # noqa: E402
from generated_videos import ClipSpec  # noqa: E402
from test_video import packets, run  # noqa: E402
from test_video_segments import _killed_at  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def onnx(tiny_model_files):
    return tiny_model_files[1]


def clip(path: Path, frames: int, damage: str = "none", at: float = 0.5, duplicates=(), container="mkv",
         size=(48, 64)) -> Path:
    spec = ClipSpec(frames=frames, size=size, rate=24, container=container, bframes=0 if duplicates else 2,
                    keyint=48, open_gop=False, pix_fmt="yuv420p", variable=False, duplicates=tuple(duplicates),
                    rotation=None, audio=True, faststart=True, damage="none", damage_at=at)
    generated_videos.write(spec, path, seed=7)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        del data[int(len(data) * at):]
    elif damage == "noise":
        middle = len(data) // 2 - (1 << 14)
        data[middle:middle + (1 << 15)] = np.random.default_rng(1).integers(0, 256, 1 << 15, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def frames_of(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray().tobytes()) for f in container.decode(video=0)]


def both(source: Path, tmp_path: Path, onnx: Path, segment: str = "1"):
    common = ["--onnx", onnx, "--tile", "32", "--backend", "onnxruntime", "--codec", "ffv1"]
    one = run(source, "-o", tmp_path / f"one{source.suffix}", *common, "--segment", "0")
    seg = run(source, "-o", tmp_path / f"seg{source.suffix}", *common, "--segment", segment)
    for result in (one, seg):
        assert "Traceback" not in result.stderr, result.stderr
    return one, seg


def reported(result) -> str:
    lines = [line for line in result.stderr.splitlines() if "did not decode" in line]
    assert len(lines) == 1, result.stderr
    return lines[0].split(": ", 3)[3]


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_a_clip_cut_at_60_percent_reports_the_same_loss_on_both_paths(tmp_path, onnx, container):
    source = clip(tmp_path / f"cut.{container}", 240, "cut", 0.6, container=container)
    one, seg = both(source, tmp_path, onnx)
    assert one.returncode == seg.returncode == 1, (one.stderr, seg.stderr)
    assert "segments done" in seg.stdout and "segments done" not in one.stdout
    assert reported(one) == reported(seg) and "cut short" in reported(one)
    written = frames_of(tmp_path / f"one.{container}")
    assert written == frames_of(tmp_path / f"seg.{container}") and 0 < len(written) < 240
    missing = int(reported(one).split(" of the ")[0])
    assert abs(len(written) + missing - 240) <= 2, (len(written), missing)     # Matroska: counted from seconds
    assert packets(tmp_path / f"one.{container}", "audio") == packets(tmp_path / f"seg.{container}", "audio")


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_noise_over_the_middle_is_reported_with_where_and_how_much(tmp_path, onnx, container):
    """32 KiB of noise over the middle of a 30 s clip of 720 frames: on both paths the same frames are written, and
    the frames that did not decode are named (count, seconds, where); what decoded plus what is reported is what
    was encoded."""
    source = clip(tmp_path / f"noisy.{container}", 720, "noise", container=container, size=(32, 48))
    one, seg = both(source, tmp_path, onnx, "4")
    assert one.returncode == seg.returncode == 1, (one.stderr, seg.stderr)
    text = reported(one)
    assert text == reported(seg) and "t=" in text and " s)" in text, text
    written = frames_of(tmp_path / f"one.{container}")
    assert written == frames_of(tmp_path / f"seg.{container}") and 600 < len(written) < 720
    assert len(written) + int(text.split(" of the ")[0]) == 720, text


def test_duplicate_timestamps_are_cut_by_position_killed_and_resumed(tmp_path, onnx):
    """216 frames, three of which share their predecessor's timestamp: segments (said, with why), a kill after two
    of them, a resume, and the one-pass output, frame for frame."""
    source = clip(tmp_path / "dups.mkv", 216, duplicates=(50, 120, 190))
    reference = tmp_path / "ref.mkv"
    one = run(source, "-o", reference, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime", "--codec", "ffv1",
              "--segment", "0")
    assert one.returncode == 0, one.stderr
    out, work = tmp_path / "out.mkv", tmp_path / ".out.mkv.parts"
    command = [sys.executable, "-m", "drcn.runtime.run_cli", str(source), "-o", str(out), "--onnx", str(onnx),
               "--tile", "16", "--backend", "onnxruntime", "--threads", "1", "--codec", "ffv1", "--segment", "1"]
    _killed_at(command, work, 2)
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["segments"][0]["ordered"] and len(manifest["segments"]) >= 8
    assert manifest["settings"]["path"] == "host" and manifest["settings"]["precision"] not in (None, "auto")
    done = len(list(work.glob("part-*.json")))
    assert 2 <= done < len(manifest["segments"]) and not out.exists()
    result = run(*command[3:])
    assert result.returncode == 0, result.stderr
    assert "cannot be found by timestamp (3 of its 216 frames share a timestamp" in result.stdout, result.stdout
    assert f"resuming dups.mkv: {done} of" in result.stdout
    assert "3 frame(s) shared a timestamp" in result.stdout
    assert frames_of(out) == frames_of(reference) and len(frames_of(out)) == 216
    assert packets(out, "audio") == packets(source, "audio")


def test_a_finished_outputs_leftover_parts_are_swept(tmp_path, onnx):
    """A kill between the rename of the output and the removal of the work folder: the rerun removes the folder."""
    source = clip(tmp_path / "c.mkv", 30)
    out = tmp_path / "c_x2.mkv"
    assert run(source, "--onnx", onnx, "--backend", "onnxruntime", "--segment", "0").returncode == 0
    leftover = tmp_path / ".c_x2.mkv.parts"
    leftover.mkdir()
    (leftover / "manifest.json").write_text("{}")
    result = run(source, "--onnx", onnx, "--backend", "onnxruntime")
    assert result.returncode == 0 and "nothing to do" in result.stdout and "removed the segments" in result.stdout
    assert not leftover.exists() and out.exists()


def test_the_join_counts_its_frames_before_the_output_is_in_place(tmp_path, onnx):
    from drcn.errors import DrcnError
    from drcn.runtime.media import segments
    from drcn.runtime.media.video import VideoSource

    source = clip(tmp_path / "c.mkv", 40)
    out = tmp_path / "out.mkv"
    result = run(source, "-o", tmp_path / "part.mkv", "--onnx", onnx, "--backend", "onnxruntime", "--segment", "0",
                 "--codec", "ffv1")
    assert result.returncode == 0
    src = VideoSource(source)
    try:
        with pytest.raises(DrcnError, match="has 40 frames where its parts recorded 41"):
            segments.join([tmp_path / "part.mkv"], src, out, 41)
    finally:
        src.container.close()
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
