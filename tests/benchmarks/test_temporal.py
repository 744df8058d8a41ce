"""drcn-bench temporal (issue 33, item 4): on a panning clip made here, the default precisions' frame-to-frame
change where the input is static is no larger than fp32's, and the figures can tell a flickering output."""

import json

import numpy as np
import pytest

from drcn.benchmarks.temporal import panning_clip, temporal_figures


def test_the_clip_pans_a_band_by_a_sub_pixel_step_and_keeps_the_rest_still():
    clip, band = panning_clip((30, 40), 4, 2.0)
    assert len(clip) == 4 and clip[0].shape == (30, 40, 3) and clip[0].dtype == np.uint8
    outside = np.r_[0:band.start, band.stop:30]
    assert all(np.array_equal(frame[outside], clip[0][outside]) for frame in clip)
    assert not np.array_equal(clip[0][band], clip[1][band])               # the band moves...
    assert not np.array_equal(clip[1][band][:, :-1], clip[0][band][:, 1:])  # ...by less than one input pixel


def test_the_figures_see_a_static_pixel_that_flickers_and_follow_the_pan():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    frames = [wide[:, t:t + 80].copy() for t in range(3)]                  # everything pans one output pixel
    band = slice(10, 20)                                                    # input rows; x2: output rows 20-40
    panned = temporal_figures(frames, band, 2.0, 4)
    assert panned["moving"]["max"] == 0                                      # followed exactly
    still = [wide[:, :80].copy() for _ in range(3)]
    still[1][50, 40] ^= 0x20                                                 # one static value flickers by 32
    found = temporal_figures(still, band, 2.0, 4)
    assert found["static"]["max"] == 32


@pytest.mark.slow
def test_what_auto_may_choose_does_not_flicker_where_the_picture_is_still(tmp_path, cache):
    pytest.importorskip("openvino")
    from drcn.benchmarks import cli
    from drcn.runtime.backends.precision_check import cpu_capabilities, offered

    choices = ["fp32", *offered(cpu_capabilities(), True)]
    out = tmp_path / "t.json"
    assert cli.main(["temporal", "--precision", ",".join(choices), "--frames", "4", "--size", "128x72",
                     "--json", str(out)]) == 0
    found = json.loads(out.read_text())
    assert set(found) == set(choices) and found["fp32"]["vs_fp32"]["max"] == 0
    for precision in choices:
        assert found[precision]["static"]["max"] <= found["fp32"]["static"]["max"], precision
        assert found[precision]["static"]["values"] > 0 and found[precision]["moving"]["values"] > 0
