"""drcn-run --make-sample-video: a short clip made here (no download) that the tutorial and drcn-bench jobs use; it
is what it says (frames, size, rate, an AAC track), written whole or not at all."""

from __future__ import annotations

import pytest

from conftest import run_cli

av = pytest.importorskip("av")


def test_the_sample_clip_holds_what_it_says(tmp_path):
    clip = tmp_path / "clip.mp4"
    result = run_cli("drcn.runtime.run_cli", "--make-sample-video", str(clip))
    assert result.returncode == 0, result.stderr
    assert "wrote a sample clip of 48 frames (160x90, 24 fps, with audio)" in result.stdout
    with av.open(str(clip)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 160, 90)
        assert audio.codec_context.name == "aac"
        frames = list(container.decode(video=0))
    assert len(frames) == 48 and frames[0].to_ndarray(format="rgb24").std() > 10     # a picture, not a flat frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]                # no temporary left beside it


def test_a_container_it_does_not_write_is_one_line_and_no_file(tmp_path):
    result = run_cli("drcn.runtime.run_cli", "--make-sample-video", str(tmp_path / "clip.avi"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--make-sample-video" in result.stderr and "name a .mp4, .mkv or .mov file" in result.stderr
    assert not list(tmp_path.iterdir())
