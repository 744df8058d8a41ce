"""drcn-export --triton: the model repository's config parses with Triton's own schema and names tensors, shapes
and dtypes that match the ONNX file beside it."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxscript")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient[grpc] is not installed (dev extra)")

from google.protobuf import text_format  # noqa: E402

from drcn.export import cli  # noqa: E402
from drcn.onnx_meta import read_onnx_info  # noqa: E402


def parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_repository_matches_the_onnx_and_parses_with_tritons_schema(tiny_model_files, tmp_path, capsys):
    import onnx

    weights = tiny_model_files[0]
    assert cli.main(["--weights", str(weights), "--triton", str(tmp_path / "models"), "--triton-tile", "32",
                     "--triton-max-batch", "6", "--triton-instances", "2", "--triton-kind", "y"]) == 0
    assert "wrote the Triton model repository" in capsys.readouterr().out
    model_dir = tmp_path / "models" / "drcn"
    config = parse(model_dir / "config.pbtxt")
    onnx_path = model_dir / "1" / "model.onnx"
    info = read_onnx_info(onnx_path)
    window = 32 + 2 * info.halo
    assert config.name == "drcn" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 6
    graph = onnx.load(str(onnx_path)).graph
    for declared, actual in ((config.input[0], graph.input[0]), (config.output[0], graph.output[0])):
        assert declared.name == actual.name
        assert declared.data_type == model_config_pb2.TYPE_FP32
        assert actual.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = actual.type.tensor_type.shape.dim
        assert len(dims) == 1 + len(declared.dims) == 4          # batch dimension is Triton's
        assert dims[1].dim_value == declared.dims[0] == info.config.channels
        assert not dims[2].dim_value and not dims[3].dim_value   # dynamic in the graph, fixed by the config
        assert list(declared.dims[1:]) == [window, window]
    assert list(config.dynamic_batching.preferred_batch_size) == [3, 6]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.instance_group[0].count == 2
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    assert config.parameters["drcn.halo"].string_value == str(info.halo)
    assert config.parameters["drcn.window"].string_value == str(window)


def test_cpu_repository_and_bad_options(tiny_model_files, tmp_path, capsys):
    weights = str(tiny_model_files[0])
    assert cli.main(["--weights", weights, "--triton", str(tmp_path / "m"), "--triton-device", "cpu",
                     "--onnx", str(tmp_path / "also.onnx")]) == 0
    config = parse(tmp_path / "m" / "drcn" / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator
    assert (tmp_path / "also.onnx").is_file()
    for argv, words in ((["--weights", weights], "give --onnx FILE, --triton DIR"),
                        (["--weights", weights, "--triton", str(tmp_path / "x"), "--shape", "1x64x64"], "--shape")):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert words in capsys.readouterr().err


def test_the_default_repository_serves_whole_rgb_frames(tiny_model_files, tmp_path, capsys):
    """What a client without drcn sends: a low-resolution RGB image, [N, 3, h, w] float32; what it gets: the image
    upscaled, as drcn-run writes it (the model is run here with ONNX Runtime, as Triton's backend would)."""
    import numpy as np
    import onnxruntime as ort

    from drcn import frame
    from drcn.runtime.media.colour import upscale_image
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    assert cli.main(["--weights", str(tiny_model_files[0]), "--triton", str(tmp_path / "models"),
                     "--scale", "3"]) == 0
    assert "rgb frames of any size, x3" in capsys.readouterr().out
    model_dir = tmp_path / "models" / "drcn"
    config = parse(model_dir / "config.pbtxt")
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [3, -1, -1]
    assert config.parameters["drcn.kind"].string_value == "rgb"
    assert config.parameters["drcn.scale"].string_value == "3"
    info = read_onnx_info(model_dir / "1" / "model.onnx")
    assert (info.kind, info.scale) == ("rgb", 3)
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 256, (2, 21, 30, 3), dtype=np.uint8)
    batch = np.concatenate([frame.to_input(image) for image in lr])         # (2, 3, 21, 30): what the client sends
    out = ort.InferenceSession(str(model_dir / "1" / "model.onnx")).run(None, {"input": batch})[0]
    assert out.shape == (2, 3, 63, 90)
    y_graph = OnnxRuntimeBackend(str(tiny_model_files[1]))
    for image, result in zip(lr, out):
        want = upscale_image(image, 3, lambda y: y_graph.run(y[None, None])[0, 0])
        diff = np.abs(frame.from_output(result[None]).astype(int) - want.astype(int))
        assert (diff > 0).mean() < 1e-3 and diff.max() <= 3
