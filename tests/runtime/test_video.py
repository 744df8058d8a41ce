"""Video through drcn-run with PyAV: clips are made here (a few dozen small frames, irregular timestamps, an AAC
track, subtitles, chapters, colour tags, 10 bit) and the outputs are checked stream by stream."""

import fractions
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

MS = fractions.Fraction(1, 1000)


def make_clip(path: Path, frames: int = 24, size=(48, 64), audio: bool = True, subtitles: bool = False,
              chapters: bool = False, codec: str = "libx264", pix_fmt: str = "yuv420p", colour: dict | None = None,
              sar: fractions.Fraction | None = None) -> list[float]:
    """Write a clip with irregular frame durations (33, 40, 67 ms); returns the frame times in seconds."""
    rng = np.random.default_rng(0)
    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=25)
    video.width, video.height, video.pix_fmt = size[1], size[0], pix_fmt
    video.time_base = video.codec_context.time_base = MS
    for key, value in (colour or {}).items():
        setattr(video.codec_context, key, value)
    if sar:
        video.codec_context.sample_aspect_ratio = sar
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    subs_in = None
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text("1\n00:00:00,100 --> 00:00:00,500\nHello\n\n2\n00:00:00,600 --> 00:00:00,900\nWorld\n")
        subs_in = av.open(str(srt))
        subs = out.add_stream_from_template(subs_in.streams.subtitles[0])
        subs.metadata["language"] = "eng"
    out.metadata["title"] = "drcn test clip"
    if chapters:
        out.set_chapters([{"id": 1, "start": 0, "end": 400, "time_base": MS, "metadata": {"title": "One"}},
                          {"id": 2, "start": 400, "end": 900, "time_base": MS, "metadata": {"title": "Two"}}])
    times, pts = [], 0
    deep = "10" in pix_fmt
    for i in range(frames):
        yy, xx = np.mgrid[0:size[0], 0:size[1]]
        img = np.stack([(xx * 4 + i * 10) % 256, (yy * 5) % 256, (xx + yy + 3 * i) % 256], -1).astype(np.uint16)
        picture = (av.VideoFrame.from_ndarray((img * 257).astype(np.uint16), format="rgb48le") if deep
                   else av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24"))
        picture = picture.reformat(format=pix_fmt, dst_colorspace=(colour or {}).get("colorspace"))
        picture.pts, picture.time_base = pts, MS
        times.append(pts / 1000)
        pts += int(rng.choice([33, 40, 67]))
        out.mux(video.encode(picture))
    out.mux(video.encode(None))
    if sound:
        samples = 8 * pts
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 8000)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024].copy(), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    if subs_in:
        for packet in subs_in.demux(subs_in.streams.subtitles[0]):
            if packet.dts is not None:
                packet.stream = subs
                out.mux(packet)
    out.close()
    return times


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(**{kind: 0}) if p.size]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.fixture
def onnx(tiny_model_files):
    return tiny_model_files[1]


def test_h264_aac_irregular_timestamps_kept_exactly(tmp_path):
    """The issue's floor: same frames, each at its input time (1 ms), twice the size, audio byte-identical."""
    clip = tmp_path / "clip.mp4"
    times = make_clip(clip)
    result = run(clip, "-o", tmp_path / "big.mp4", "--tile", "64", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    big = tmp_path / "big.mp4"
    out_times = frame_times(big)
    assert len(out_times) == len(times) == 24
    assert max(abs(a - b) for a, b in zip(out_times, times)) <= 0.001
    assert len(set(np.round(np.diff(times), 3))) > 1, "the clip really has irregular frame durations"
    with av.open(str(big)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 96)
        assert stream.codec_context.name == "h264" and c.streams.audio
    assert packets(big, "audio") == packets(clip, "audio") and packets(clip, "audio")
    assert "copying #1 audio (aac" in result.stdout and "BT.601" in result.stdout
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_mkv_subtitles_chapters_metadata_and_folder_output(tmp_path, onnx):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=12, subtitles=True, chapters=True)
    result = run(clip, "-o", tmp_path / "out", "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "clip_x2.mkv"
    assert packets(out, "subtitles") == packets(clip, "subtitles") and packets(clip, "subtitles")
    assert packets(out, "audio") == packets(clip, "audio")
    with av.open(str(out)) as c, av.open(str(clip)) as original:
        assert [ch["metadata"].get("title") for ch in c.chapters()] == ["One", "Two"]
        assert [(ch["start"], ch["end"]) for ch in c.chapters()] == [(ch["start"], ch["end"])
                                                                     for ch in original.chapters()]
        assert c.metadata.get("title") == "drcn test clip"
        assert c.streams.subtitles[0].metadata.get("language") == "eng"
    assert len(frame_times(out)) == 12


def test_stream_the_container_cannot_hold_is_reported_by_name(tmp_path, onnx):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=6, subtitles=True)
    result = run(clip, "-o", tmp_path / "out.mp4", "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert "warning: stream #2 subtitle (srt, eng) cannot go into a '.mp4' file" in result.stdout
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_codec_crf_pix_fmt_10_bit_colour_tags_and_sar(tmp_path, onnx):
    clip = tmp_path / "hd.mkv"
    tags = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    make_clip(clip, frames=6, audio=False, pix_fmt="yuv420p10le", colour=tags, sar=fractions.Fraction(4, 3))
    result = run(clip, "-o", tmp_path / "x265.mkv", "--onnx", onnx, "--tile", "32", "--codec", "libx265",
                 "--crf", "24", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert "(10-bit)" in result.stdout and "BT.709 limited range (from the stream)" in result.stdout
    with av.open(str(tmp_path / "x265.mkv")) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.name == "hevc" and ctx.format.name == "yuv420p10le"
        assert (int(ctx.colorspace), int(ctx.color_primaries), int(ctx.color_trc), int(ctx.color_range)) == (1, 1, 1, 1)
        assert ctx.sample_aspect_ratio == fractions.Fraction(4, 3)
    # Lossless FFV1 in 8-bit 4:4:4 from the 10-bit input, as asked.
    result = run(clip, "-o", tmp_path / "ffv1.mkv", "--onnx", onnx, "--tile", "32", "--codec", "ffv1",
                 "--pix-fmt", "yuv444p", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "ffv1.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
        assert c.streams.video[0].codec_context.format.name == "yuv444p"


def test_video_matches_the_image_path(tmp_path, onnx):
    """A lossless 4:4:4 output holds, up to YUV rounding, what drcn-run writes for the same frame as a PNG."""
    from drcn.images import read_image, write_image

    clip = tmp_path / "c.mkv"
    make_clip(clip, frames=3, audio=False, codec="ffv1", pix_fmt="yuv444p")
    assert run(clip, "-o", tmp_path / "v.mkv", "--onnx", onnx, "--tile", "32", "--codec", "ffv1",
               "--backend", "onnxruntime").returncode == 0
    with av.open(str(clip)) as c:
        first = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=5, src_color_range=1,
                                                  interpolation="BICUBIC").to_ndarray()
    write_image(tmp_path / "frames" / "f.png", first)
    assert run(tmp_path / "frames", "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime").returncode == 0
    expected = read_image(tmp_path / "frames_x2" / "f.png").astype(int)
    with av.open(str(tmp_path / "v.mkv")) as c:
        got = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=5, src_color_range=1,
                                                interpolation="BICUBIC").to_ndarray().astype(int)
    assert got.shape == expected.shape
    assert np.abs(got - expected).mean() < 1.5 and np.percentile(np.abs(got - expected), 99) <= 6


def test_existing_output_is_skipped_unless_overwrite(tmp_path, onnx):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=4, audio=False)
    args = (clip, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
    assert run(*args).returncode == 0
    out = tmp_path / "clip_x2.mp4"
    stamp = out.stat().st_mtime_ns
    again = run(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout and out.stat().st_mtime_ns == stamp
    assert run(*args, "--overwrite").returncode == 0 and out.stat().st_mtime_ns != stamp


def test_bad_videos_fail_in_one_line_with_nothing_written(tmp_path, onnx):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    audio_only = tmp_path / "voice.mp4"
    out = av.open(str(audio_only), "w")
    sound = out.add_stream("aac", rate=8000)
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    chunk.sample_rate, chunk.pts = 8000, 0
    out.mux(sound.encode(chunk))
    out.mux(sound.encode(None))
    out.close()
    good = tmp_path / "good.mp4"
    make_clip(good, frames=4, audio=False)
    cases = [((text,), "not a video FFmpeg can read"), ((audio_only,), "has no video stream (audio)"),
             ((good, "--codec", "nosuchcodec"), "--codec nosuchcodec"),
             ((good, "--pix-fmt", "rgb24"), "--pix-fmt rgb24"),
             ((good, "-o", tmp_path / "notes.mp4" / "x.mp4"), "cannot write here"),
             ((good, "--scale", "2.1"), "cannot hold")]   # 64x48 x2.1 = 135x101: odd, 4:2:0 cannot hold it
    for args, words in cases:
        result = run(*args, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and words in lines[0], (args, result.stderr)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert leftovers == ["good.mp4", "notes.mp4", "voice.mp4"], leftovers


def _faststart(source: Path, target: Path) -> None:
    """Remux ``source`` with the MP4 index (moov) at the front, as web videos are."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_a_clip_cut_short_is_reported_and_what_decodes_is_kept(tmp_path, onnx, container):
    """The first half of a 20-frame clip (Matroska; MP4 with its index at the front): exit 1, a line saying how
    much could not be read, and the frames that decoded written at their timestamps with the audio read."""
    clip = tmp_path / f"long.{container}"
    times = make_clip(clip, frames=20, audio=True)
    if container == "mp4":
        _faststart(clip, tmp_path / "fs.mp4")
        clip = tmp_path / "fs.mp4"
    cut = tmp_path / f"cut.{container}"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = run(cut, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cut short" in result.stderr and "did not decode" in result.stderr
    out = tmp_path / f"cut_x2.{container}"
    kept = frame_times(out)
    assert 0 < len(kept) < 20
    # exactly the frames the input's decoder gives (in a cut MP4, B-frames whose references are lost do not decode)
    assert kept == pytest.approx(frame_times(cut), abs=1e-3)
    assert set(np.round(kept, 3)) <= set(np.round(times, 3))
    assert packets(out, "audio"), "the audio that was read is kept"


def test_a_killed_video_run_leaves_nothing_after_the_next_run(tmp_path, onnx):
    """SIGKILL in the middle of a video: only a hidden temporary remains, and the next run removes it."""
    import os
    import signal
    import time

    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=60, size=(96, 128), audio=False)
    command = [sys.executable, "-m", "drcn.runtime.run_cli", str(clip), "--onnx", str(onnx), "--tile", "16",
               "--backend", "onnxruntime", "--threads", "1"]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".clip_x2.mp4.*")):
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers, "the run was killed before it started writing"
    assert not (tmp_path / "clip_x2.mp4").exists()
    result = run(clip, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_x2.mp4"]
    assert len(frame_times(tmp_path / "clip_x2.mp4")) == 60


def test_a_failed_video_run_creates_no_output_folder(tmp_path, onnx):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3, audio=False)
    result = run(clip, "-o", tmp_path / "new" / "deeper", "--preset", "nosuch", "--onnx", onnx, "--tile", "32",
                 "--backend", "onnxruntime")
    assert result.returncode == 2 and "--preset nosuch" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_an_encoder_that_cannot_start_fails_before_any_work(tmp_path, onnx):
    from drcn.runtime.tensorrt.cuda import gpu_available

    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3, audio=False)
    cases = [(("--preset", "nosuch"), "--preset nosuch: libx264 presets are"),
             (("--codec", "libsvtav1", "--preset", "99"), "preset=99")]
    if not gpu_available():
        cases.append((("--codec", "h264_nvenc"), "--codec h264_nvenc: the encoder cannot start here"))
    for extra, words in cases:
        result = run(clip, *extra, "--onnx", onnx, "--tile", "32", "--backend", "onnxruntime")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and words in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_ffmpeg_logs_never_reach_python(tmp_path):
    """Any PyAV log level installs a Python callback that FFmpeg's decoder threads call with the GIL; freeing a
    frame-threaded decoder (a segment's reopen) then deadlocked under load (CI hung 600 s). drcn turns it off."""
    from drcn.runtime.media import video

    av.logging.set_level(av.logging.PANIC)
    try:
        video._av()
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)
