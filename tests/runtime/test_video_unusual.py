"""Unusual videos are kept or refused, never silently wrong: a resolution change mid-stream is refused at the frame
where it happens (nothing written); a display rotation is carried to the output, or the frames are turned upright
where the container cannot carry it (said); a second video stream is copied as it is (said); .ts output works."""

from __future__ import annotations

import fractions
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")


TICK = fractions.Fraction(1, 25)


def picture(i: int, size: tuple[int, int]) -> np.ndarray:
    """An asymmetric test picture (a bright block top-left), so a turn or a mirror shows."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + i * 7) % 200, (yy * 4) % 200, np.full_like(xx, 60)], -1).astype(np.uint8)
    img[: h // 3, : w // 3] = 250
    return img


def write_clip(path: Path, size: tuple[int, int], frames: int = 6, start: int = 0, rotation: int | None = None,
               hflip: bool = False, extra_video: bool = False, audio: bool = False) -> None:
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
    video.time_base = video.codec_context.time_base = TICK
    video.codec_context.options = {"qp": "0"}
    if rotation is not None:
        video.set_display_rotation(rotation, hflip=hflip)
    second = None
    if extra_video:
        second = out.add_stream("mpeg4", rate=25)
        second.width, second.height, second.pix_fmt = 32, 24, "yuv420p"
        second.time_base = second.codec_context.time_base = TICK
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(picture(i, size), format="rgb24")
        frame.pts, frame.time_base = start + i, TICK
        out.mux(video.encode(frame))
        if second is not None:
            small = av.VideoFrame.from_ndarray(picture(i, (24, 32)), format="rgb24")
            small.pts, small.time_base = i, TICK
            out.mux(second.encode(small))
    out.mux(video.encode(None))
    if second is not None:
        out.mux(second.encode(None))
    if sound is not None:
        wave = np.zeros((1, 8000 * frames // 25), np.float32)
        for s in range(0, wave.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(wave[:, s:s + 1024].copy(), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, s
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    out.close()


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def decoded(path: Path, index: int = 0) -> list:
    with av.open(str(path)) as c:
        return [f for f in c.decode(c.streams.video[index])]


@pytest.fixture
def onnx(tiny_model_files):
    return tiny_model_files[1]


def test_a_resolution_change_mid_stream_is_refused_at_the_frame_where_it_happens(tmp_path, onnx):
    first, second = tmp_path / "a.ts", tmp_path / "b.ts"
    write_clip(first, (40, 48), frames=6)
    write_clip(second, (32, 64), frames=6, start=6)
    clip = tmp_path / "changes.ts"
    clip.write_bytes(first.read_bytes() + second.read_bytes())   # MPEG-TS concatenates
    assert {(f.width, f.height) for f in decoded(clip)} == {(48, 40), (64, 32)}
    result = run(clip, "-o", tmp_path / "out.mkv", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "changes resolution at t=" in line and "(frame 6)" in line and "48x40 to 64x32" in line and "nothing is written" in line, line
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".out*"))


def test_a_resolution_change_in_a_later_segment_leaves_no_part_behind(tmp_path, onnx):
    first, second = tmp_path / "a.ts", tmp_path / "b.ts"
    write_clip(first, (40, 48), frames=12)
    write_clip(second, (32, 64), frames=12, start=12)
    clip = tmp_path / "changes.ts"
    clip.write_bytes(first.read_bytes() + second.read_bytes())
    result = run(clip, "-o", tmp_path / "out.mkv", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32",
                 "--segment", "0.2")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "segments done" in result.stdout, result.stdout           # it was cut into segments
    line = result.stderr.strip().splitlines()[-1]
    assert "changes resolution at t=" in line and "48x40 to 64x32" in line and "nothing is written" in line, line
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".out*"))   # no work folder either


@pytest.mark.parametrize("hflip", [False, True], ids=["turned", "turned-mirrored"])
def test_rotation_is_kept_where_the_container_carries_it_and_applied_where_not(tmp_path, onnx, hflip):
    clip = tmp_path / "rotated.mp4"
    write_clip(clip, (40, 48), frames=4, rotation=90, hflip=hflip)
    source = decoded(clip)
    assert source[0].rotation == 90
    kept = run(clip, "-o", tmp_path / "kept.mp4", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32",
               "--crf", "0", "--pix-fmt", "yuv444p")
    assert kept.returncode == 0, kept.stderr
    assert "display matrix kept (rotated 90° counter-clockwise" in kept.stdout + kept.stderr
    out = decoded(tmp_path / "kept.mp4")
    assert (out[0].width, out[0].height) == (96, 80) and out[0].rotation == 90

    turned = run(clip, "-o", tmp_path / "turned.ts", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32",
                 "--crf", "0", "--pix-fmt", "yuv444p")
    assert turned.returncode == 0, turned.stderr
    assert "frames turned upright" in turned.stdout + turned.stderr
    upright = decoded(tmp_path / "turned.ts")
    assert (upright[0].width, upright[0].height) == (80, 96) and upright[0].rotation == 0
    # the turned frames are the kept frames as a player shows them
    shown = np.rot90(out[0].to_ndarray(format="rgb24"), 1)
    shown = shown[:, ::-1] if hflip else shown
    assert np.abs(shown.astype(int) - upright[0].to_ndarray(format="rgb24").astype(int)).mean() < 2.0


def test_display_transforms_read_back_as_written():
    from drcn.runtime.media.video import DisplayTransform, _display_matrix

    for degrees in (0, 90, 180, 270):
        for hflip in (False, True):
            found = DisplayTransform.of_matrix(_display_matrix(degrees, hflip))
            image = np.arange(12).reshape(3, 4, 1)
            assert found.shown_size((3, 4)) == found.apply(image).shape[:2]
            # the same picture as the equivalent pair: (180, mirrored) shows what a vertical flip shows
            assert (found.degrees, found.hflip) == (degrees, hflip)
    assert DisplayTransform.of_matrix((46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30)).degrees is None


def test_a_second_video_stream_is_copied_and_named(tmp_path, onnx):
    clip = tmp_path / "two.mkv"
    write_clip(clip, (40, 48), frames=5, extra_video=True, audio=True)
    result = run(clip, "-o", tmp_path / "out.mkv", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32")
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "#1 video (mpeg4) as it is, not upscaled" in said and "no other streams" not in said, said
    with av.open(str(tmp_path / "out.mkv")) as out, av.open(str(clip)) as original:
        assert [s.type for s in out.streams] == ["video", "video", "audio"]
        copied = [bytes(p) for p in out.demux(out.streams.video[1]) if p.size]
        source = [bytes(p) for p in original.demux(original.streams.video[1]) if p.size]
        assert copied == source
    assert [(f.width, f.height) for f in decoded(tmp_path / "out.mkv")] == [(96, 80)] * 5


def test_ts_output_is_written(tmp_path, onnx):
    clip = tmp_path / "in.mp4"
    write_clip(clip, (40, 48), frames=6, audio=True)
    result = run(clip, "-o", tmp_path / "out.ts", "--onnx", onnx, "--backend", "onnxruntime", "--tile", "32")
    assert result.returncode == 0, result.stderr
    frames = decoded(tmp_path / "out.ts")
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (96, 80)
    # MPEG-TS keeps time in 1/90000: the frames keep the input's spacing in seconds (the muxer may shift the whole
    # timeline, audio with it, to keep AAC's priming samples at non-negative times)
    times = np.array([float(f.pts * f.time_base) for f in frames])
    source = np.array([float(f.pts * f.time_base) for f in decoded(clip)])
    np.testing.assert_allclose(times - times[0], source - source[0], atol=1e-4)
    with av.open(str(tmp_path / "out.ts")) as out:
        assert [s.type for s in out.streams] == ["video", "audio"]
        assert out.streams.video[0].codec_context.name == "h264"
