"""The OpenVINO CPU backend: precision choice, parity with ONNX Runtime, auto-selection, model cache."""

import numpy as np
import pytest

from drcn import DrcnError
from drcn.runtime.backends.openvino_backend import cache_folder, choose_precision


def test_precision_choice_follows_the_cpu():
    assert choose_precision("auto", ["FP32", "BF16", "INT8"])[0] == "bf16"
    precision, why = choose_precision("auto", ["FP32", "INT8"])
    assert precision == "fp32" and "no bf16" in why
    assert choose_precision("fp32", ["FP32", "BF16"])[0] == "fp32"
    with pytest.raises(DrcnError, match="does not support bf16"):
        choose_precision("bf16", ["FP32"])
    with pytest.raises(DrcnError, match="auto, fp32 or bf16"):
        choose_precision("fp16", ["FP32", "FP16"])


def test_cache_key_changes_with_what_affects_the_blob():
    keys = {cache_folder("a" * 64, "fp32", "latency", "2026.4"), cache_folder("b" * 64, "fp32", "latency", "2026.4"),
            cache_folder("a" * 64, "bf16", "latency", "2026.4"), cache_folder("a" * 64, "fp32", "throughput", "2026.4"),
            cache_folder("a" * 64, "fp32", "latency", "2026.5")}
    assert len(keys) == 5


ov = pytest.importorskip("openvino")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRCN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("capabilities, expected", [(["FP32", "INT8"], "fp32"), (["FP32", "BF16"], "bf16")])
def test_backend_reports_what_the_capability_query_says(tiny_model_files, cache, monkeypatch, capabilities, expected):
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    real = ov.Core.get_property

    def fake(self, device, name):  # only the capability query is mocked
        return capabilities if name == "OPTIMIZATION_CAPABILITIES" else real(self, device, name)

    monkeypatch.setattr(ov.Core, "get_property", fake)
    backend = OpenVINOBackend(str(tiny_model_files[1]))
    assert backend.precision == expected and f"{expected} (auto" in backend.description
    assert backend.config["INFERENCE_PRECISION_HINT"] == ("bf16" if expected == "bf16" else "f32")


def test_fp32_parity_with_onnxruntime_and_cache(tiny_model_files, cache):
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32")
    x = np.random.default_rng(0).random((3, 1, 33, 41)).astype(np.float32)
    np.testing.assert_allclose(backend.run(x), OnnxRuntimeBackend(str(tiny_model_files[1])).run(x), atol=1e-5)
    backend.run(x[:1])  # a second shape compiles once more
    assert len(backend._requests) == 2
    assert any((cache / "openvino").rglob("*.blob")) or any((cache / "openvino").rglob("*"))


def test_drcn_run_picks_openvino_and_matches_onnxruntime(tiny_model_files, tmp_path, cache, capsys):
    import importlib.util

    from drcn import matlab
    from drcn.images import read_image, write_image
    from drcn.runtime import run_cli

    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs onnxruntime for the comparison")
    src = tmp_path / "frames"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(src / f"{i}.png", rng.integers(0, 256, (40, 52, 3), dtype=np.uint8))
    onnx = str(tiny_model_files[1])
    assert run_cli.main(["--tile", "16", str(src), "--onnx", onnx, "-o", str(tmp_path / "ov")]) == 0
    assert "OpenVINO" in capsys.readouterr().out
    assert run_cli.main(["--tile", "16", str(src), "--onnx", onnx, "-o", str(tmp_path / "ort"),
                         "--backend", "onnxruntime"]) == 0
    for i in range(2):
        y_ov = matlab.rgb2y(read_image(tmp_path / "ov" / f"{i}.png")).astype(int)
        y_ort = matlab.rgb2y(read_image(tmp_path / "ort" / f"{i}.png")).astype(int)
        assert np.mean(np.abs(y_ov - y_ort) <= 1) >= 0.999
