"""TensorRT on a real GPU: build, run, stale-engine refusal, FP16 vs FP32 parity, the RTX runtime cache.
Skipped where no TensorRT flavour targets a usable GPU (every CI machine); the logic around them, and GPU-free
RTX builds, are tested in test_engine_sidecar.py and test_tensorrt_build.py."""

import json
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    from drcn.errors import DrcnError
    from drcn.runtime.tensorrt.cuda import query_gpu
    from drcn.runtime.tensorrt.flavour import installed_flavours, rtx_runs_on

    flavours = installed_flavours()
    if not flavours:
        pytest.skip("no TensorRT flavour installed (tensorrt from NVIDIA's index, or tensorrt-rtx)")
    try:
        info = query_gpu()
    except DrcnError as exc:
        pytest.skip(f"no usable CUDA GPU: {exc}")
    if flavours == ["rtx"] and not rtx_runs_on(info.compute_capability):
        pytest.skip(f"only TensorRT-RTX is installed and it does not target {info.name} "
                    f"(compute {info.compute_capability}); standard TensorRT is needed there")
    return info


@pytest.fixture(scope="module")
def engines(tmp_path_factory, gpu, tiny_model_files):
    from drcn.runtime.tensorrt.build import BuildRequest, build_engine

    folder = tmp_path_factory.mktemp("trt")
    weights, onnx32 = tiny_model_files
    # FP16 from the FP32 graph: the builder flag on TensorRT 10, a checked conversion on strongly typed builders.
    e32 = build_engine(BuildRequest(onnx=onnx32, engine=folder / "fp32.engine", tile=32, batch=4))
    e16 = build_engine(BuildRequest(onnx=onnx32, engine=folder / "fp16.engine", fp16=True, tile=32, batch=4))
    return folder / "fp32.engine", folder / "fp16.engine", e32, e16


def test_build_writes_engine_and_sidecar(engines, gpu):
    path32, path16, side32, side16 = engines
    assert path32.is_file() and (path32.parent / "fp32.engine.json").is_file()
    assert side32.precision == "fp32" and side16.precision == "fp16"
    assert side32.gpu == gpu and side32.profile.max == (4, 1, 32 + 2 * side32.halo, 32 + 2 * side32.halo)


def test_runtime_cache_is_written_and_reused(engines):
    """TensorRT-RTX keeps its JIT kernels beside the engine; the second backend loads them."""
    from drcn.runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(str(engines[0]))
    if not backend.flavour.runtime_cache:
        backend.close()
        pytest.skip("standard TensorRT has no runtime cache")
    backend.run(np.zeros((1, 1, 40, 40), np.float32))
    backend.close()
    (cache,) = engines[0].parent.glob("fp32.engine.*.rtxcache")
    size = cache.stat().st_size
    again = TensorRTBackend(str(engines[0]))
    again.run(np.zeros((1, 1, 40, 40), np.float32))
    again.close()
    assert size > 0 and list(engines[0].parent.glob("fp32.engine.*.rtxcache")) == [cache]


def test_fp32_engine_matches_onnxruntime(engines, tiny_model_files):
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.backends.tensorrt_backend import TensorRTBackend
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
    from drcn.runtime.backends.tensorrt_backend import TensorRTBackend

    engine = tmp_path / "m.engine"
    shutil.copy(engines[0], engine)
    sidecar = json.loads((engines[0].parent / "fp32.engine.json").read_text())
    sidecar["gpu"]["name"] = "Some Other GPU"
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(DrcnError, match="Rebuild it"):
        TensorRTBackend(str(engine))


def test_profile_violation_is_a_clear_error(engines):
    from drcn.errors import DrcnError
    from drcn.runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(str(engines[0]))
    with pytest.raises(DrcnError, match="outside the engine's profile"):
        backend.run(np.zeros((8, 1, 40, 40), np.float32))
    backend.close()
