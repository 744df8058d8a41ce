import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drcn.runtime.tiling import axis_windows, plan, run_tiled


@given(length=st.integers(1, 400), tile=st.integers(1, 64), halo=st.integers(0, 20), fixed=st.booleans())
def test_windows_cover_every_pixel_once_with_full_context(length, tile, halo, fixed):
    size, spans = axis_windows(length, tile, halo, fixed)
    covered = np.zeros(length, int)
    for start, out_start, out_end in spans:
        assert 0 <= start and start + size <= length              # never padded: inside the image
        assert start <= out_start < out_end <= start + size
        # Each kept pixel has `halo` pixels of context inside the window, or the image border is there too.
        assert out_start - start >= halo or start == 0
        assert start + size - out_end >= halo or start + size == length
        covered[out_start:out_end] += 1
    assert (covered == 1).all()
    if fixed:
        assert size == min(length, tile + 2 * halo)
    else:  # as few tiles as `tile` allows, all of one size, none larger than asked
        assert size <= min(length, tile + 2 * halo)
        if len(spans) > 1:
            assert len(spans) == -(-length // tile)
            kept = [end - out for _, out, end in spans]
            assert max(kept) - min(kept) <= len(spans) - 1 and max(kept) <= tile


def test_equal_tiles_shrink_the_computed_area():
    """640x360 at tile 256 with the shipped model's halo of 13: the same 6 windows, 1.29x the output instead of 2.07x."""
    def area(fixed):
        (h, w), windows = plan(360, 640, 256, 13, fixed)
        return len(windows), len(windows) * h * w / (360 * 640)

    assert area(fixed=True) == (6, pytest.approx(2.071, abs=1e-3))
    assert area(fixed=False) == (6, pytest.approx(1.288, abs=1e-3))


def test_small_images_run_whole_and_tile_zero_means_whole():
    (h, w), windows = plan(30, 40, tile=16, halo=10, fixed=True)
    assert (h, w) == (30, 36) and len(windows) == 3                 # rows whole, columns tiled
    (h, w), windows = plan(30, 40, tile=16, halo=10)
    assert (h, w) == (30, 34) and len(windows) == 3                 # tiles of 14, 14 and 12 columns
    assert plan(500, 700, tile=0, halo=13) == ((500, 700), plan(500, 700, 0, 13)[1])
    assert len(plan(500, 700, 0, 13)[1]) == 1


def _box_net(halo):
    """A size-preserving net with receptive radius `halo`: `halo` zero-padded 3x3 box filters + ReLU."""
    def run(batch):
        x = batch.astype(np.float64)
        for _ in range(halo):
            p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            x = sum(p[:, :, i:i + x.shape[2], j:j + x.shape[3]] for i in range(3) for j in range(3)) / 9 - 0.01
            x = np.maximum(x, 0)
        return x.astype(np.float32)
    return run


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), tile=st.integers(1, 30), halo=st.integers(1, 5),
       batch=st.integers(1, 6), fixed=st.booleans())
def test_tiled_equals_whole_for_a_local_network(h, w, tile, halo, batch, fixed):
    image = np.random.default_rng(h * 100 + w).random((1, h, w)).astype(np.float32)
    net = _box_net(halo)
    np.testing.assert_allclose(run_tiled(net, image, tile, halo, batch, fixed=fixed), net(image[None])[0],
                               atol=1e-6)


def test_too_small_halo_is_not_exact():
    """The test above can fail: with less context than the receptive field, tiles differ from the whole."""
    image = np.random.default_rng(0).random((1, 60, 60)).astype(np.float32)
    net = _box_net(4)
    assert np.abs(run_tiled(net, image, 16, 2, 4) - net(image[None])[0]).max() > 1e-4


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), tile=st.integers(1, 40), batch=st.integers(1, 5))
def test_tiled_onnxruntime_equals_untiled(tiny_model_files, h, w, tile, batch):
    pytest.importorskip("onnxruntime")
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = _ort_cache.get("b") or _ort_cache.setdefault("b", OnnxRuntimeBackend(str(tiny_model_files[1])))
    image = np.random.default_rng(h * 7 + w).random((1, h, w)).astype(np.float32)
    whole = backend.run(image[None])[0]
    tiled = run_tiled(backend.run, image, tile, backend.spec.halo, batch)
    assert backend.spec.halo == 6
    assert np.abs(tiled - whole).max() <= 1e-5


_ort_cache: dict = {}
