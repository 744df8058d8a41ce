"""The geometric self-ensemble: transforms undo exactly, an equivariant function is its own ensemble, and tiled
inference with the ensemble equals the ensemble of the whole image (the ensemble wraps each window's run)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drcn.ensemble import SUBSETS, ensemble_run, forward, inverse


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_each_transform_is_undone_and_an_equivariant_function_is_its_own_ensemble(size):
    x = np.random.default_rng(0).random((2, 1, 5, 7), np.float32)
    for t in SUBSETS[size]:
        np.testing.assert_array_equal(inverse(forward(x, *t), *t), x)

    def blur(batch):   # a symmetric 3x3 mean with zero padding: commutes with flips and quarter turns
        padded = np.pad(batch, ((0, 0), (0, 0), (1, 1), (1, 1)))
        return sum(padded[:, :, i:i + batch.shape[2], j:j + batch.shape[3]] for i in range(3) for j in range(3)) / 9

    np.testing.assert_allclose(ensemble_run(blur, size)(x), blur(x), atol=1e-6)


def test_the_ensemble_averages_what_a_directional_function_gives():
    x = np.random.default_rng(1).random((1, 1, 4, 4), np.float32)
    shift = lambda b: np.roll(b, 1, axis=-1)          # noqa: E731 - not equivariant: the ensemble changes it
    two = ensemble_run(shift, 2)(x)
    np.testing.assert_allclose(two, (np.roll(x, 1, -1) + np.roll(x, -1, -1)) / 2, atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(height=st.integers(20, 44), width=st.integers(20, 44), tile=st.sampled_from([8, 12, 16]),
       size=st.sampled_from([2, 4, 8]))
def test_tiled_with_the_ensemble_equals_the_ensemble_of_the_whole_image(tiny_backend, height, width, tile, size):
    from drcn.runtime.tiling import run_tiled

    backend = tiny_backend
    y = np.random.default_rng(height * width).random((1, height, width), np.float32)
    run = ensemble_run(backend.run, size)
    whole = run(y[None])[0]
    tiled = run_tiled(run, y, tile, backend.spec.halo, batch=3)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_files):
    pytest.importorskip("onnxruntime")
    from drcn.runtime.backends.table import create_backend

    return create_backend("onnxruntime", str(tiny_model_files[1]))


def test_the_api_and_drcn_run_apply_the_ensemble_on_the_host_path(tiny_model_files, tmp_path, cache):
    pytest.importorskip("onnxruntime")
    import drcn
    from drcn.images import read_image, write_image

    from conftest import run_cli

    image = np.random.default_rng(2).integers(0, 256, (26, 34, 3), dtype=np.uint8)
    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", tile=0, ensemble=8) as up:
        whole = up.upscale(image).astype(int)
        assert "self-ensemble of 8" in up.description and "host path" in up.description
    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", tile=16, ensemble=8) as up:
        tiled = up.upscale(image).astype(int)
    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", tile=16) as up:
        plain = up.upscale(image).astype(int)
    diff = np.abs(tiled - whole)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001          # float rounding flips at most
    assert np.abs(plain - whole).max() > 1                          # the ensemble changed the result
    write_image(tmp_path / "in.png", image)
    result = run_cli("drcn.runtime.run_cli", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--onnx",
                     str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "16", "--ensemble", "8")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), tiled)
    # The device path puts the ensemble inside its frame graph, around the network: the host path's pixels.
    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", path="device", tile=16, ensemble=8) as up:
        device = up.upscale(image).astype(int)
        assert "device path" in up.description
    diff = np.abs(device - tiled)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002
    with pytest.raises(ValueError, match="ensemble must be 1, 2, 4 or 8"):
        drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", ensemble=3)
