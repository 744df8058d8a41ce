import numpy as np
import pytest

from drcn import matlab
from drcn.runtime.media.colour import finish, prepare, upscale_image


def identity(y):
    return y


@pytest.mark.parametrize("shape, dtype", [((20, 30), np.uint8), ((20, 30, 3), np.uint8), ((20, 30, 4), np.uint8),
                                          ((20, 30), np.uint16), ((20, 30, 3), np.uint16), ((21, 31, 4), np.uint16)])
def test_kind_is_kept(shape, dtype):
    rng = np.random.default_rng(0)
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    out = upscale_image(image, 2, identity)
    assert out.dtype == dtype and out.ndim == image.ndim
    assert out.shape[:2] == (2 * shape[0], 2 * shape[1]) and out.shape[2:] == shape[2:]


def test_non_integer_scale_size():
    out = upscale_image(np.zeros((21, 30, 3), np.uint8), 1.5, identity)
    assert out.shape == (32, 45, 3)  # ceil(31.5), 45


def test_gray_network_input_is_the_evaluation_pipelines():
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 256, (16, 12), dtype=np.uint8)
    prepared = prepare(lr, 3)
    np.testing.assert_array_equal(prepared.y, matlab.imresize(lr, 3).astype(np.float32) / 255)
    np.testing.assert_array_equal(finish(prepared, prepared.y), matlab.imresize(lr, 3))


def test_colour_and_alpha_follow_bicubic():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    out = upscale_image(rgba, 2, identity)
    np.testing.assert_array_equal(out[:, :, 3], matlab.imresize(rgba[:, :, 3], 2))
    # With an identity network the colour result is bicubic in YCbCr: close to bicubic in RGB.
    rgb_bicubic = matlab.imresize(rgba[:, :, :3].astype(np.float64), 2)
    assert np.abs(out[:, :, :3].astype(float) - np.clip(rgb_bicubic, 0, 255)).max() <= 3


def test_network_changes_only_luma():
    rgb = np.full((8, 8, 3), 128, np.uint8)
    brighter = upscale_image(rgb, 2, lambda y: y + 10 / 255)
    ycc = matlab.rgb2ycbcr(brighter)
    y0 = int(matlab.rgb2ycbcr(rgb)[0, 0, 0])  # 126: Y of mid-grey in studio swing
    assert np.abs(ycc[:, :, 0].astype(int) - (y0 + 10)).max() <= 1
    assert np.abs(ycc[:, :, 1:].astype(int) - 128).max() <= 1


@pytest.mark.parametrize("scale", [2, 4])
def test_host_path_memory_per_output_pixel(scale):
    """The host path's numpy work stays within drcn.limits' budget per output pixel (it took 120 bytes when Cb and
    Cr were enlarged together in float64): the pixel budget that refuses oversized images relies on it."""
    import tracemalloc

    from drcn.limits import BYTES_PER_OUTPUT_PIXEL

    # large enough that finish's bands of rows are a small part of the frame, as for the frames the budget is for
    image = np.random.default_rng(0).integers(0, 256, (400, 500, 3), dtype=np.uint8)
    tracemalloc.start()
    prepared = prepare(image, scale)
    out = finish(prepared, prepared.y.copy())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    per_pixel = peak / (out.shape[0] * out.shape[1])
    assert per_pixel < BYTES_PER_OUTPUT_PIXEL * 0.75, per_pixel
