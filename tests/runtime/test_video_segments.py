"""Long videos in segments (drcn.runtime.media.segments): the output of a segmented run, killed and resumed or not,
is the output of one uninterrupted pass (compared decoded frame by frame with lossless codecs), with the input's
audio and subtitle packets; a changed setting starts over; a damaged part is redone. Clips are made here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")

from test_video import make_clip, packets, run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def onnx(tiny_model_files):
    return tiny_model_files[1]


def decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(frame.pts, frame.to_ndarray()) for frame in container.decode(video=0)]


def assert_same_video(a: Path, b: Path) -> None:
    frames_a, frames_b = decoded(a), decoded(b)
    assert [p for p, _ in frames_a] == [p for p, _ in frames_b] and frames_a
    for (pts, x), (_, y) in zip(frames_a, frames_b):
        assert np.array_equal(x, y), f"frame at pts {pts} differs"


def upscale(clip: Path, out: Path, onnx: Path, *extra) -> subprocess.CompletedProcess:
    result = run(clip, "-o", out, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime", *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_segments_join_to_the_one_pass_output_with_every_other_stream(tmp_path, onnx):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=90, subtitles=True, chapters=True)      # one keyframe: every later segment seeks back
    one = upscale(clip, tmp_path / "one.mkv", onnx, "--codec", "ffv1", "--segment", "0")
    seg = upscale(clip, tmp_path / "seg.mkv", onnx, "--codec", "ffv1", "--segment", "0.8")
    assert "segments done" not in one.stdout and "0 of 5 segments done" in seg.stdout, seg.stdout
    assert "4 starting between keyframes" in seg.stdout
    assert_same_video(tmp_path / "one.mkv", tmp_path / "seg.mkv")
    for kind in ("audio", "subtitles"):
        assert packets(tmp_path / "seg.mkv", kind) == packets(clip, kind) and packets(clip, kind)
    with av.open(str(tmp_path / "seg.mkv")) as out, av.open(str(clip)) as original:
        assert out.chapters() == original.chapters() and out.metadata.get("title") == "drcn test clip"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []     # work folder gone


def test_h264_with_b_frames_and_an_open_gop_joins_exactly(tmp_path, onnx):
    """x264 at crf 0 (lossless) with B-frames: decode timestamps stay continuous across the joins. The input has an
    open GOP every 10 frames: no frame doubled or missing at a boundary."""
    clip = tmp_path / "open.mp4"
    out = av.open(str(clip), "w")
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.options = {"x264-params": "keyint=10:min-keyint=10:open-gop=1:bframes=3:scenecut=0"}
    for i in range(80):
        yy, xx = np.mgrid[0:48, 0:64]
        image = np.stack([(xx * 4 + i * 9) % 256, (yy * 5 + i) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        picture = av.VideoFrame.from_ndarray(image, format="rgb24")
        picture.pts = i
        out.mux(stream.encode(picture))
    out.mux(stream.encode(None))
    out.close()
    upscale(clip, tmp_path / "one.mp4", onnx, "--crf", "0", "--segment", "0")
    seg = upscale(clip, tmp_path / "seg.mp4", onnx, "--crf", "0", "--segment", "0.5")
    assert "segments of about 0.5 s" in seg.stdout
    assert_same_video(tmp_path / "one.mp4", tmp_path / "seg.mp4")
    assert len(decoded(tmp_path / "seg.mp4")) == 80


def _killed_at(command: list[str], work: Path, records: int, timeout: float = 120) -> None:
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and victim.poll() is None:
            if len(list(work.glob("part-*.json"))) >= records:
                break
            time.sleep(0.02)
    finally:
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
        victim.wait()


def test_a_killed_run_resumes_at_the_first_unfinished_segment(tmp_path, onnx):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=120, size=(72, 96))
    reference = tmp_path / "ref" / "clip.mkv"
    upscale(clip, reference, onnx, "--codec", "ffv1", "--segment", "0")
    out = tmp_path / "clip_x2.mkv"
    work = tmp_path / ".clip_x2.mkv.parts"
    command = [sys.executable, "-m", "drcn.runtime.run_cli", str(clip), "-o", str(out), "--onnx", str(onnx),
               "--tile", "16", "--backend", "onnxruntime", "--threads", "1", "--codec", "ffv1", "--segment", "0.6"]
    _killed_at(command, work, 2)                 # in the third segment (or between segments)
    done = len(list(work.glob("part-*.json")))
    count = len(json.loads((work / "manifest.json").read_text())["segments"])
    assert 2 <= done < count and count >= 6 and not out.exists(), (done, count)
    result = run(*command[3:])
    assert result.returncode == 0, result.stderr
    assert f"resuming clip.mkv: {done} of {count} segments done" in result.stdout, result.stdout
    assert_same_video(reference, out)
    assert packets(out, "audio") == packets(clip, "audio")
    assert not work.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]

    # killed inside the join (paused halfway through it): no output, the join's temporary is hidden and removed by
    # the rerun, which joins again and gives the same output
    out.unlink()
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "DRCN_TEST_PAUSE_IN_JOIN": "30"})
    deadline = time.monotonic() + 120
    try:
        # the join's temporary beside the output, once every part is recorded (an earlier temporary is the one-pass
        # encoder opened, then given up, before the segments are planned)
        def joining() -> bool:
            return len(list(work.glob("part-*.json"))) == count and bool(list(tmp_path.glob(".clip_x2.mkv.*tmp*")))

        while time.monotonic() < deadline and not joining():
            assert victim.poll() is None, "the run ended before its join"
            time.sleep(0.02)
        assert joining(), "the join never started"
        # a second run on the same output while the first writes it: refused in one line, nothing touched
        second = run(*command[3:])
        lines = second.stderr.strip().splitlines()
        assert second.returncode != 0 and len(lines) == 1 and "another run is writing it now" in lines[0], \
            second.stderr
        assert joining() and victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    assert not out.exists() and len(list(work.glob("part-*.json"))) == count, sorted(p.name for p in tmp_path.iterdir())
    result = run(*command[3:])
    assert result.returncode == 0, result.stderr
    assert f"resuming clip.mkv: {count} of {count} segments done" in result.stdout, result.stdout
    assert_same_video(reference, out)
    assert not work.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name or ".lock" in p.name]


def test_a_changed_setting_starts_over_and_a_damaged_part_is_redone(tmp_path, onnx):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=60, size=(72, 96), audio=False)
    out = tmp_path / "clip_x2.mkv"
    work = tmp_path / ".clip_x2.mkv.parts"
    base = [str(clip), "-o", str(out), "--onnx", str(onnx), "--tile", "16", "--backend", "onnxruntime",
            "--threads", "1", "--segment", "0.4"]
    command = [sys.executable, "-m", "drcn.runtime.run_cli", *base, "--codec", "ffv1"]
    _killed_at(command, work, 2)
    assert len(list(work.glob("part-*.json"))) >= 2
    result = run(*base, "--codec", "libx264", "--crf", "0")
    assert result.returncode == 0, result.stderr
    assert "starting over (codec changed from 'ffv1' to 'libx264')" in result.stdout, result.stdout
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    reference = tmp_path / "ref.mkv"
    upscale(clip, reference, onnx, "--codec", "ffv1", "--segment", "0")

    out.unlink()
    _killed_at(command, work, 3)
    part = work / "part-00001.mkv"
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["settings"]["codec"] == "ffv1" and manifest["input"]["size"] == clip.stat().st_size
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])       # truncated after it was recorded
    result = run(*base, "--codec", "ffv1")
    assert result.returncode == 0, result.stderr
    assert "resuming clip.mkv: " in result.stdout and not work.exists()
    assert_same_video(reference, out)


def test_a_short_video_is_one_pass_and_segment_zero_turns_segments_off(tmp_path, onnx):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=20)
    result = upscale(clip, tmp_path / "out.mp4", onnx)                  # 20 frames < 10 s: one segment
    assert "segments done" not in result.stdout and len(decoded(tmp_path / "out.mp4")) == 20
    bad = run(clip, "--segment", "-1", "--onnx", onnx)
    assert bad.returncode == 2 and "--segment" in bad.stderr and "Traceback" not in bad.stderr


def test_an_mpeg_ts_input_without_an_index_segments_exactly(tmp_path, onnx):
    """MPEG-TS seeks by byte estimate and may land after a segment's first frame: the segment seeks earlier."""
    from test_video_unusual import write_clip

    clip = tmp_path / "clip.ts"
    write_clip(clip, (48, 64), frames=60)
    upscale(clip, tmp_path / "one.mkv", onnx, "--codec", "ffv1", "--segment", "0")
    seg = upscale(clip, tmp_path / "seg.mkv", onnx, "--codec", "ffv1", "--segment", "0.5")
    assert "segments done" in seg.stdout
    assert_same_video(tmp_path / "one.mkv", tmp_path / "seg.mkv")
    assert len(decoded(tmp_path / "seg.mkv")) == 60
