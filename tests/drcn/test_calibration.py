"""The generated text images the INT8 study calibrates on besides photos: the same on every machine, text-like
(mostly background with sharp strokes in both polarities), and added to the pairs only when asked for."""

import numpy as np

from drcn.calibration import text_image, text_pairs


def test_text_images_are_deterministic_and_look_like_text():
    first, again = text_image(0, 96), text_image(0, 96)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (96, 96) and first.dtype == np.uint8
    dark_on_light, light_on_dark = text_image(0, 128), text_image(1, 128)
    assert np.median(dark_on_light) > 180 and np.median(light_on_dark) < 70     # both polarities
    for image in (dark_on_light, light_on_dark):
        edges = np.abs(np.diff(image.astype(np.int16), axis=1))
        assert (edges > 100).mean() > 0.005                                      # sharp strokes
        assert len(np.unique(image)) > 20                                        # anti-aliased, not binary
    assert not np.array_equal(text_image(2, 96), text_image(4, 96))


def test_text_pairs_are_pairs_of_the_generated_images():
    pairs = text_pairs((2, 3), side=48, count=2)
    assert [scale for _, _, scale in pairs] == [2.0, 3.0, 2.0, 3.0]
    hr, up, _ = pairs[0]
    assert hr.shape == up.shape == (48, 48) and hr.dtype == up.dtype == np.uint8
    assert pairs[2][0].shape == (48, 48) and not np.array_equal(pairs[0][0], pairs[2][0])
