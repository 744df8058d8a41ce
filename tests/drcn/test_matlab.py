"""The MATLAB conventions against values derived by hand from MATLAB's documented definitions."""

import numpy as np
import pytest

from drcn import DrcnError, matlab


def test_cubic_kernel_values():
    # Keys (1981) with a = -0.5: 1 at 0, 0 at the integers, these at the half/quarter points.
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])
    expected = [1.0, 0.8671875, 0.5625, 0.2265625, 0.0, -0.0703125, -0.0625, -0.0234375, 0.0, 0.0]
    np.testing.assert_allclose(matlab.cubic_kernel(x), expected, atol=1e-15)
    np.testing.assert_allclose(matlab.cubic_kernel(-x), expected, atol=1e-15)


def test_upscale_x2_taps():
    # Output pixel 3 (1-based) of an x2 enlargement sits at input coordinate 1.75: taps at distances
    # 1.75, 0.75, 0.25, 1.25 from input pixels 0..3 (1-based).
    w_int, idx_int = matlab.resize_weights(10, 20, 2.0)
    # At the border, taps outside the image mirror back inside (MATLAB 'symmetric').
    assert idx_int.min() == 0 and idx_int.max() == 9
    # An interior output (1-based 11, at input 5.75) has the four plain Keys taps.
    taps = sorted(zip(idx_int[10].tolist(), w_int[10].tolist()))
    nonzero = [(i, v) for i, v in taps if v != 0.0]
    assert [i for i, _ in nonzero] == [3, 4, 5, 6]
    np.testing.assert_allclose([v for _, v in nonzero], [-0.0234375, 0.2265625, 0.8671875, -0.0703125])


def test_downscale_x2_is_antialiased():
    # Shrinking by 2 stretches the kernel to h(x) = 0.5·cubic(0.5·x): 8 taps, symmetric.
    w, idx = matlab.resize_weights(20, 10, 0.5)
    nonzero = w[4][w[4] != 0.0]
    expected = [-0.01171875, -0.03515625, 0.11328125, 0.43359375]
    np.testing.assert_allclose(nonzero, expected + expected[::-1])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_output_size_is_ceil_and_exact_for_thirds():
    img = np.zeros((255, 101), np.uint8)
    assert matlab.imresize(img, 1 / 3).shape == (85, 34)
    assert matlab.imresize(img, 2).shape == (510, 202)
    assert matlab.imresize(np.zeros((5, 7, 3)), output_shape=(9, 4)).shape == (9, 4, 3)


def test_constant_and_linear_images_are_preserved():
    const = np.full((17, 23), 0.37)
    for scale in (0.5, 1 / 3, 2, 3, 2.5):
        np.testing.assert_allclose(matlab.imresize(const, scale), 0.37, atol=1e-12)
    # Keys' cubic reproduces linear functions exactly away from the border.
    ramp = np.tile(np.arange(40, dtype=np.float64), (40, 1))
    up = matlab.imresize(ramp, 2)
    centres = (np.arange(80) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[10, 8:72], centres[8:72], atol=1e-12)


def test_uint8_is_rounded_and_saturated():
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 255
    out = matlab.imresize(img, 2)
    assert out.dtype == np.uint8
    ref = matlab.imresize(img.astype(np.float64), 2)
    assert ref.min() < 0 and ref.max() > 255  # overshoot of the cubic kernel ...
    np.testing.assert_array_equal(out, np.floor(np.clip(ref, 0, 255) + 0.5))  # ... saturated, rounded


def test_not_opencv_inter_cubic():
    import cv2

    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    ours = matlab.imresize(img, 2)
    theirs = cv2.resize(img, (64, 64), interpolation=cv2.INTER_CUBIC)
    assert np.abs(ours - theirs).max() > 1e-3


def test_rgb2ycbcr_constants():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    ycc = matlab.rgb2ycbcr(rgb)
    # Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]); Cb, Cr offset by 128.
    np.testing.assert_array_equal(ycc[0, 0], [235, 128, 128])
    np.testing.assert_array_equal(ycc[0, 1], [16, 128, 128])
    np.testing.assert_array_equal(ycc[0, 2], [81, 90, 240])   # 81.481, 90.203, 240
    np.testing.assert_array_equal(ycc[0, 3], [145, 54, 34])   # 144.553, 53.797, 34.214
    np.testing.assert_array_equal(ycc[0, 4], [41, 240, 110])  # 40.966, 240, 109.786
    np.testing.assert_allclose(matlab.rgb2ycbcr(rgb / 255.0)[0, 2], np.array([81.481, 90.203, 240]) / 255)


def test_colour_round_trips():
    rng = np.random.default_rng(1)
    rgb = rng.random((6, 7, 3))
    np.testing.assert_allclose(matlab.ycbcr2rgb(matlab.rgb2ycbcr(rgb)), rgb, atol=1e-12)
    rgb8 = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    back = matlab.ycbcr2rgb(matlab.rgb2ycbcr(rgb8))
    assert np.abs(back.astype(int) - rgb8).max() <= 2  # 8-bit YCbCr quantisation


def test_modcrop_and_degrade():
    img = np.zeros((31, 20, 3))
    assert matlab.modcrop(img, 3).shape == (30, 18, 3)
    assert matlab.modcrop(img, 1.5).shape == (30, 18, 3)   # x1.5 = 3/2: sizes step by 3
    assert matlab.modcrop(img, 2.5).shape == (30, 20, 3)   # x2.5 = 5/2: sizes step by 5
    y = np.zeros((30, 18), np.uint8)
    lr, up = matlab.bicubic_degrade(y, 3)
    assert lr.shape == (10, 6) and up.shape == (30, 18)
    with pytest.raises(DrcnError, match="modcrop"):
        matlab.bicubic_degrade(np.zeros((31, 18), np.uint8), 3)


def test_luma_keeps_grayscale_as_is():
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(matlab.luma(gray), gray)
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert matlab.luma(rgba).max() == 16


def test_quantize_like_saving_an_image():
    values = np.array([-0.1, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 1.2])
    np.testing.assert_array_equal(matlab.quantize(values), [0, 0, 1, 0, 255, 255])
    assert matlab.quantize(np.array([0.5]), np.uint16)[0] == 32768 and matlab.quantize(values).dtype == np.uint8
