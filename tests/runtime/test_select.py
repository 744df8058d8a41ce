import pytest

from drcn import DrcnError
from drcn.runtime.backends.select import auto_onnx_backend, choose


def test_explicit_files_pick_their_backend(tmp_path):
    for name in ("m.engine", "m.onnx", "m.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    assert choose(engine=str(tmp_path / "m.engine")).backend == "tensorrt"
    assert choose(onnx=str(tmp_path / "m.onnx")).backend == auto_onnx_backend()
    assert choose(onnx=str(tmp_path / "m.onnx"), backend="onnxruntime").backend == "onnxruntime"
    assert choose(weights=str(tmp_path / "m.safetensors")).backend == "torch"
    with pytest.raises(DrcnError, match="not both"):
        choose(engine=str(tmp_path / "m.engine"), onnx=str(tmp_path / "m.onnx"))
    # TensorRT takes an ONNX file too (the engine is built into the cache); OpenVINO takes no engine.
    assert choose(onnx=str(tmp_path / "m.onnx"), backend="tensorrt").backend == "tensorrt"
    with pytest.raises(DrcnError, match="runs a onnx file"):
        choose(engine=str(tmp_path / "m.engine"), backend="openvino")
    with pytest.raises(DrcnError, match="no such file"):
        choose(onnx=str(tmp_path / "missing.onnx"))


def test_working_directory_then_shipped(tmp_path):
    choice = choose(cwd=tmp_path)
    assert choice.reason == "the shipped model" and choice.model.suffix == ".onnx"
    assert choose(cwd=tmp_path, backend="torch").model.suffix == ".safetensors"
    (tmp_path / "model.onnx").write_bytes(b"x")
    choice = choose(cwd=tmp_path)
    assert choice.backend == auto_onnx_backend() and choice.model == tmp_path / "model.onnx"
    assert choose(cwd=tmp_path, backend="tensorrt").model == tmp_path / "model.onnx"   # built on first use
    (tmp_path / "model.engine").write_bytes(b"x")
    assert choose(cwd=tmp_path, backend="tensorrt").backend == "tensorrt"
    with pytest.raises(DrcnError, match="unknown backend"):
        choose(cwd=tmp_path, backend="magic")
