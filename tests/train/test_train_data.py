import numpy as np
import pytest

from drcn import DrcnError, matlab
from drcn.train import data


def test_patches_come_from_the_evaluation_pipeline():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (100, 90), dtype=np.uint8)
    spec = data.PatchSpec(scales=(3.0,), size=41, stride=21)
    inputs, targets = data.extract_patches(y, 3.0, spec)
    cropped = matlab.modcrop(y, 3)  # 99 x 90
    _, up = matlab.bicubic_degrade(cropped, 3)
    assert inputs.shape == targets.shape == (3 * 3, 41, 41)  # rows 0,21,42 x cols 0,21,42
    np.testing.assert_array_equal(targets[4], cropped[21:62, 21:62])
    np.testing.assert_array_equal(inputs[4], up[21:62, 21:62])


def test_cache_is_reused(image_folder, tmp_path, monkeypatch):
    spec = data.PatchSpec(scales=(2.0, 3.0), size=16, stride=8)
    first = data.PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    class NoPool:  # any attempt to prepare patches again fails
        def __init__(self, *args, **kwargs):
            raise AssertionError("patches were prepared again")

    monkeypatch.setattr(data, "ProcessPoolExecutor", NoPool)
    monkeypatch.setattr(data, "_InlineExecutor", NoPool)
    second = data.PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.inputs, second.inputs)
    # A different spec is a different cache entry.
    with pytest.raises(AssertionError, match="prepared again"):
        data.PatchSet.from_folders([image_folder], data.PatchSpec((2.0,), 16, 8), cache_dir=tmp_path / "cache")


def test_batch_augmentation_is_consistent():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 9, 9), dtype=np.uint8)
    patches = data.PatchSet(x, x.copy(), data.PatchSpec(size=9))
    idx = np.arange(5)
    inputs, targets = patches.batch(idx, np.array([0, 1, 4, 6, 3]))
    assert inputs.shape == (5, 1, 9, 9) and inputs.dtype == np.float32 and inputs.max() <= 1.0
    np.testing.assert_array_equal(inputs, targets)  # same transform on input and target
    np.testing.assert_allclose(inputs[0, 0], x[0] / 255, rtol=1e-6)
    np.testing.assert_allclose(inputs[1, 0], np.rot90(x[1]) / 255, rtol=1e-6)
    np.testing.assert_allclose(inputs[2, 0], x[2][:, ::-1] / 255, rtol=1e-6)


def test_images_smaller_than_a_patch(image_folder, tmp_path):
    with pytest.raises(DrcnError, match="at least 64x64"):
        data.PatchSet.from_folders([image_folder], data.PatchSpec((2.0,), 64, 32), cache_dir=tmp_path)


def test_patches_know_their_scale(image_folder, tmp_path):
    spec = data.PatchSpec(scales=(2.0, 3.0), size=16, stride=8)
    patches = data.PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path)
    alone = data.PatchSet.from_folders([image_folder], data.PatchSpec((3.0,), 16, 8), cache_dir=tmp_path)
    x3 = patches.scale_ids == 1
    assert 0 < x3.sum() < len(patches)
    np.testing.assert_array_equal(np.sort(patches.inputs[x3].reshape(len(alone), -1), axis=0),
                                  np.sort(alone.inputs.reshape(len(alone), -1), axis=0))
    cached = data.PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.scale_ids, patches.scale_ids)


def test_scale_weights_set_how_often_each_scale_is_drawn():
    ids = np.array([0] * 900 + [1] * 50 + [2] * 50, np.uint8)  # x2 has 18x the patches of x3 or x4
    patches = data.PatchSet(np.zeros((1000, 3, 3), np.uint8), np.zeros((1000, 3, 3), np.uint8),
                            data.PatchSpec((2.0, 3.0, 4.0), 3, 1), ids)
    rng = np.random.default_rng(0)
    uniform = ids[patches.sample(rng, 20_000)]
    assert abs((uniform == 0).mean() - 0.9) < 0.02  # every patch equally likely
    weighted = ids[patches.sample(rng, 20_000, (2.0, 1.0, 1.0))]
    np.testing.assert_allclose(np.bincount(weighted, minlength=3) / 20_000, [0.5, 0.25, 0.25], atol=0.02)
    assert set(np.unique(patches.sample(rng, 5000, (0.0, 1.0, 0.0)))) <= set(range(900, 950))
    with pytest.raises(DrcnError, match="one weight per scale"):
        patches.sample(rng, 4, (1.0, 1.0))
