"""Hostile model files, met by every command that reads one: an ONNX file whose external data points outside its
own folder (an absolute path, '..', a name that exists only in the working directory, a symbolic link out) is
refused in one line naming the file and the location before any backend reads a byte of it; a legitimate external-
data file beside the model still works; JSON in weights files is bounded."""

from __future__ import annotations

import os
import struct

import pytest

from conftest import run_cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

SECRET = b"not-for-the-engine"


def _externalise(source, target, location: str, secret_dir) -> None:
    """Copy the ONNX ``source`` to ``target`` with its smallest initializer's data moved to ``location``."""
    model = onnx.load(str(source))
    tensor = min(model.graph.initializer, key=lambda t: len(t.raw_data) or 1 << 60)
    size = len(tensor.raw_data)
    (secret_dir / "secret.bin").write_bytes(SECRET[:size].ljust(size, b"S"))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", str(size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model_files):
    """{case: path} of ONNX files whose external data lies outside their folder; the working directory (``cwd``)
    holds a ``secret.bin`` that only a loader resolving against it would find."""
    root = tmp_path_factory.mktemp("hostile")
    models, cwd = root / "models", root / "cwd"
    models.mkdir()
    cwd.mkdir()
    source = tiny_model_files[1]
    cases = {"absolute": str(root / "secret.bin"), "dotdot": "../secret.bin", "cwd-only": "secret.bin",
             "symlink": "link.bin"}
    (root / "secret.bin").write_bytes(b"")
    paths = {}
    for case, location in cases.items():
        paths[case] = models / f"{case}.onnx"
        _externalise(source, paths[case], location, root)
    (cwd / "secret.bin").write_bytes((root / "secret.bin").read_bytes())
    os.symlink(root / "secret.bin", models / "link.bin")
    return paths, cwd


CASES = ("absolute", "dotdot", "cwd-only", "symlink")
COMMANDS = [
    ("drcn.runtime.run_cli", ["{image}", "-o", "{out}", "--backend", "openvino", "--onnx", "{model}"]),
    ("drcn.runtime.run_cli", ["{image}", "-o", "{out}", "--backend", "onnxruntime", "--onnx", "{model}"]),
    ("drcn.runtime.run_cli", ["{image}", "-o", "{out}", "--backend", "tensorrt", "--onnx", "{model}"]),
    ("drcn.runtime.tensorrt.cli", ["build", "--onnx", "{model}", "--engine", "{out}.engine"]),
    ("drcn.benchmarks.cli", ["framegraph", "{folder}", "--onnx", "{model}"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("module,args", COMMANDS, ids=["run-openvino", "run-onnxruntime", "run-tensorrt",
                                                      "trt-build", "bench-framegraph"])
def test_every_command_refuses_external_data_outside_the_model_folder(hostile, image_folder, module, args):
    pytest.importorskip("openvino")
    paths, cwd = hostile
    for case in CASES:
        model = paths[case]
        out = cwd / f"out_{case}.png"
        filled = [a.format(image=image_folder / "a.png", out=out, model=model, folder=image_folder) for a in args]
        result = run_cli(module, *filled, cwd=cwd)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, (case, result.stderr)
        assert "Traceback" not in result.stderr
        assert str(model) in lines[-1] and "keeps its data in" in lines[-1], (case, lines)
        assert not out.exists() and not (cwd / f"{out}.engine").exists()


def test_the_loader_names_the_location_and_why(hostile):
    from drcn.errors import DrcnError
    from drcn.onnx_files import load_onnx

    paths, _ = hostile
    why = {"absolute": "an absolute path", "dotdot": "'..'", "cwd-only": "does not exist beside the model",
           "symlink": "symbolic link"}
    for case in CASES:
        with pytest.raises(DrcnError) as err:
            load_onnx(paths[case])
        assert str(paths[case]) in str(err.value) and why[case] in str(err.value), str(err.value)


def test_external_data_beside_the_model_still_runs(tmp_path, tiny_model_files, cache):
    pytest.importorskip("onnxruntime")
    import numpy as np

    from drcn.runtime.backends.table import create_backend

    model = onnx.load(str(tiny_model_files[1]))
    target = tmp_path / "split.onnx"
    onnx.save(model, str(target), save_as_external_data=True, location="split.onnx.data", size_threshold=0)
    assert (tmp_path / "split.onnx.data").stat().st_size > 0
    x = np.random.default_rng(0).random((1, 1, 20, 20), np.float32)
    whole = create_backend("onnxruntime", str(tiny_model_files[1])).run(x)
    split = create_backend("onnxruntime", str(target)).run(x)
    np.testing.assert_array_equal(whole, split)
    from drcn.onnx_files import load_onnx

    loaded = load_onnx(target)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in loaded.graph.initializer)


def test_tensorrt_builds_external_data_beside_the_model_from_another_working_directory(tmp_path, tiny_model_files):
    pytest.importorskip("tensorrt_rtx")
    model = onnx.load(str(tiny_model_files[1]))
    (tmp_path / "m").mkdir()
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "m" / "split.onnx"
    onnx.save(model, str(target), save_as_external_data=True, location="split.onnx.data", size_threshold=0)
    result = run_cli("drcn.runtime.tensorrt.cli", "build", "--onnx", str(target), "--engine",
                     str(tmp_path / "m" / "split.engine"), "--tile", "32", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "split.engine").stat().st_size > 0


@pytest.mark.parametrize("header", [b"[" * 100_000 + b"]" * 100_000,
                                   b'{"__metadata__": ' + b"[" * 500 + b"]" * 500 + b"}"])
def test_deeply_nested_safetensors_headers_are_one_line(tmp_path, header):
    weights = tmp_path / "deep.safetensors"
    weights.write_bytes(struct.pack("<Q", len(header)) + header)
    from drcn.errors import DrcnError
    from drcn.weights import read_config

    with pytest.raises(DrcnError, match="deep.safetensors.*nested too deeply"):
        read_config(weights)


def test_bounded_json_limits():
    from drcn import bounded_json
    from drcn.errors import DrcnError

    assert bounded_json.loads('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    with pytest.raises(DrcnError, match="x.json: 11 bytes"):
        bounded_json.loads('{"a": "bc"}', "x.json", max_bytes=10)
    with pytest.raises(DrcnError, match="nested too deeply"):
        bounded_json.loads("[" * 40 + "]" * 40, "x.json")
    with pytest.raises(DrcnError, match="not valid JSON"):
        bounded_json.loads("{", "x.json")


def test_backend_reason_keeps_the_line_that_says_why():
    from drcn.errors import backend_reason

    openvino = RuntimeError("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at "
                            "src/frontends/common/src/frontend.cpp:47:\nLoading input model\nPath '/x' resolves to "
                            "'/x' which is outside the base directory '/m'\n\n")
    assert backend_reason(openvino) == ("Loading input model: Path '/x' resolves to '/x' which is outside the base "
                                        "directory '/m'")
    ort = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : External data path validation failed")
    assert backend_reason(ort) == "External data path validation failed"
