"""TensorRT on a real GPU: build, stale-engine refusal, FP16 vs FP32 parity. Skipped where TensorRT or a GPU
is absent (every CI machine); the logic around them is tested in test_engine_sidecar.py."""

import importlib.util
import json
import shutil

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                                 reason="TensorRT is not installed (needs NVIDIA's index and a GPU)")]


@pytest.fixture(scope="module")
def gpu():
    from drcn.errors import DrcnError
    from drcn.runtime.cuda_memory import query_gpu

    try:
        return query_gpu()
    except DrcnError as exc:
        pytest.skip(f"no usable CUDA GPU: {exc}")


@pytest.fixture(scope="module")
def engines(tmp_path_factory, gpu, tiny_model_files):
    import tensorrt as trt

    from drcn.export.exporter import export_model
    from drcn.runtime.engine_build import BuildRequest, build_engine
    from drcn.runtime.trt_precision import major_version

    folder = tmp_path_factory.mktemp("trt")
    weights, onnx32 = tiny_model_files
    onnx16 = folder / "tiny_fp16.onnx"
    export_model(onnx16, weights=str(weights), fp16=True)
    fp16_source = onnx16 if major_version(trt.__version__) >= 11 else onnx32
    e32 = build_engine(BuildRequest(onnx=onnx32, engine=folder / "fp32.engine", tile=32, batch=4))
    e16 = build_engine(BuildRequest(onnx=fp16_source, engine=folder / "fp16.engine", fp16=True, tile=32, batch=4))
    return folder / "fp32.engine", folder / "fp16.engine", e32, e16


def test_build_writes_engine_and_sidecar(engines, gpu):
    path32, path16, side32, side16 = engines
    assert path32.is_file() and (path32.parent / "fp32.engine.json").is_file()
    assert side32.precision == "fp32" and side16.precision == "fp16"
    assert side32.gpu == gpu and side32.profile.max == (4, 1, 32 + 2 * side32.halo, 32 + 2 * side32.halo)


def test_fp32_engine_matches_onnxruntime(engines, tiny_model_files):
    from drcn.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.tensorrt_backend import TensorRTBackend
    from drcn.runtime.tiling import run_tiled

    trt_backend = TensorRTBackend(str(engines[0]))
    ort_backend = OnnxRuntimeBackend(str(tiny_model_files[1]), provider="cpu")
    image = np.random.default_rng(0).random((1, 90, 77)).astype(np.float32)
    a = run_tiled(trt_backend.run, image, 32, trt_backend.spec.halo, 4)
    b = run_tiled(ort_backend.run, image, 32, ort_backend.spec.halo, 4)
    assert np.abs(a - b).max() < 1e-3
    trt_backend.close()


def test_fp16_psnr_within_0_05_db_of_fp32(engines, image_folder):
    from drcn import evaluation as quality
    from drcn.benchmarks import methods

    scores = {}
    for label, engine in (("fp32", engines[0]), ("fp16", engines[1])):
        method = methods.create("tensorrt", methods.MethodOptions(engine=str(engine)))
        scores[label] = quality.summarise(quality.evaluate(method, quality.folder_dataset(image_folder), 2))["psnr"]
    assert abs(scores["fp16"] - scores["fp32"]) <= 0.05


def test_stale_engine_is_refused(engines, tmp_path):
    from drcn.errors import DrcnError
    from drcn.runtime.tensorrt_backend import TensorRTBackend

    engine = tmp_path / "m.engine"
    shutil.copy(engines[0], engine)
    sidecar = json.loads((engines[0].parent / "fp32.engine.json").read_text())
    sidecar["gpu"]["name"] = "Some Other GPU"
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(DrcnError, match="Rebuild it"):
        TensorRTBackend(str(engine))


def test_profile_violation_is_a_clear_error(engines):
    from drcn.errors import DrcnError
    from drcn.runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(str(engines[0]))
    with pytest.raises(DrcnError, match="outside the engine's profile"):
        backend.run(np.zeros((8, 1, 40, 40), np.float32))
    backend.close()
