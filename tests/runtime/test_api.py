"""The Python API: ``import drcn`` stays light, ``drcn.upscale`` / ``drcn.Upscaler`` give exactly what drcn-run
writes, numpy and PIL in and out."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from drcn.images import read_image, write_image

pytest.importorskip("onnxruntime")


def test_import_drcn_loads_no_deep_learning_or_backend_library():
    code = ("import sys, drcn, numpy as np\n"
            "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt_rtx', 'ray') if m in sys.modules]\n"
            "print(heavy, drcn.upscale(np.zeros((40, 50, 3), np.uint8), scale=2).shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] (80, 100, 3)"


def test_the_api_gives_exactly_what_drcn_run_writes(tmp_path, tiny_model_files):
    import drcn

    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    images = {"rgb.png": rng.integers(0, 256, (33, 47, 3), dtype=np.uint8),
              "grey.png": rng.integers(0, 256, (20, 18), dtype=np.uint8),
              "alpha.png": rng.integers(0, 256, (12, 15, 4), dtype=np.uint8)}
    for name, image in images.items():
        write_image(folder / name, image)
    onnx = str(tiny_model_files[1])
    result = run_cli("drcn.runtime.run_cli", str(folder), "-o", str(tmp_path / "out"), "--onnx", onnx, "--tile", "32")
    assert result.returncode == 0, result.stderr
    with drcn.Upscaler(onnx, scale=2, tile=32) as upscaler:
        for name in images:
            assert np.array_equal(upscaler.upscale(read_image(folder / name)), read_image(tmp_path / "out" / name))
    with pytest.raises(drcn.DrcnError, match="closed"):
        upscaler.upscale(images["rgb.png"])
    once = drcn.upscale(images["rgb.png"], scale=3, model=onnx)
    assert once.shape == (99, 141, 3) and once.dtype == np.uint8


def test_pil_images_in_and_out(tiny_model_files):
    Image = pytest.importorskip("PIL.Image")
    import drcn

    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8))
    with drcn.Upscaler(tiny_model_files[1]) as upscaler:
        big = upscaler.upscale(picture)
        assert isinstance(big, Image.Image) and big.size == (24, 20) and big.mode == "RGB"
        assert np.array_equal(np.asarray(big), upscaler.upscale(np.asarray(picture)))
        with pytest.raises(drcn.DrcnError, match="numpy array"):
            upscaler.upscale([[1, 2], [3, 4]])
    with pytest.raises(drcn.DrcnError, match=r"\.engine, \.onnx or \.safetensors"):
        drcn.Upscaler("model.bin")
