"""The self-ensemble inside a graph (drcn.runtime.ensemble_graph, drcn-export --ensemble): it computes what the
ensemble around the plain graph computes, in every reader that runs it here, keeps to the portable operators,
and the runtime neither applies it twice nor loses it."""

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from drcn.ensemble import SUBSETS, ensemble_run, forward  # noqa: E402
from drcn.errors import DrcnError  # noqa: E402
from drcn.onnx_files import load_onnx  # noqa: E402
from drcn.onnx_meta import model_info  # noqa: E402
from drcn.runtime.ensemble_graph import build_ensemble_graph  # noqa: E402
from drcn.runtime.frame_graph import PORTABLE_OPS, build_frame_graph  # noqa: E402
from drcn.runtime.onnx_builder import GraphBuilder  # noqa: E402

from conftest import run_cli  # noqa: E402


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(model):
    session = _session(model)
    return lambda x: session.run(None, {"input": x})[0]


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("mirror", [False, True])
def test_graph_flips_and_quarter_turns_are_numpys(turns, mirror):
    from onnx import TensorProto, helper

    b = GraphBuilder("t/")
    out = b.rot90("x", turns)
    out = b.flip(out, 3) if mirror else out
    b.nodes.append(helper.make_node("Identity", [out], ["y"]))
    graph = helper.make_graph(b.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 3, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(30, dtype=np.float32).reshape(2, 1, 3, 5)
    got = _session(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, forward(x, turns, mirror))


@pytest.mark.parametrize("size", [2, 4, 8])
def test_the_graph_computes_the_ensemble_around_the_plain_graph(tiny_model_files, size):
    plain = load_onnx(tiny_model_files[1])
    wrapped = build_ensemble_graph(plain, size)
    x = np.random.default_rng(size).random((3, 1, 17, 26), np.float32)    # not square: quarter turns swap H, W
    want = ensemble_run(_run(plain), size)(x)
    got = _run(wrapped)(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(got - _run(plain)(x)).max() > 1e-3                      # it is not the plain network
    info = model_info(wrapped)
    assert info.self_ensemble == size and info.kind == "y" and info.halo == model_info(plain).halo
    assert {n.op_type for n in wrapped.graph.node} <= PORTABLE_OPS
    # Two copies of the network at most (shape-keeping and quarter-turned batches), reading one set of weights.
    convs = sum(n.op_type == "Conv" for n in wrapped.graph.node)
    assert convs == sum(n.op_type == "Conv" for n in plain.graph.node) * (2 if size == 8 else 1)
    added = {i.name for i in wrapped.graph.initializer} - {i.name for i in plain.graph.initializer}
    assert len(added) < 20 and len(wrapped.SerializeToString()) < len(plain.SerializeToString()) + 20_000


def test_openvino_reads_the_ensemble_graph_and_its_frame_graph(tiny_model_files):
    ov = pytest.importorskip("openvino")
    plain = load_onnx(tiny_model_files[1])
    wrapped = build_ensemble_graph(plain, 8)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(wrapped.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    x = np.random.default_rng(4).random((2, 1, 21, 30), np.float32)
    np.testing.assert_allclose(compiled(x)[0], ensemble_run(_run(plain), 8)(x), atol=1e-5)
    rgb = build_frame_graph(wrapped, model_info(wrapped), "rgb", 3)
    assert {n.op_type for n in rgb.graph.node} <= PORTABLE_OPS and model_info(rgb).self_ensemble == 8
    frame = np.random.default_rng(5).random((1, 3, 9, 13), np.float32)
    compiled = core.compile_model(core.read_model(rgb.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(frame)[0]
    want = _run(rgb)(frame)
    assert got.shape == (1, 3, 27, 39) and np.abs(got - want).max() < 2 / 255


def test_tensorrt_rtx_builds_an_engine_from_the_ensemble_graph(tiny_model_files, tmp_path):
    pytest.importorskip("tensorrt_rtx")
    import onnx

    path = tmp_path / "e8.onnx"
    onnx.save(build_ensemble_graph(load_onnx(tiny_model_files[1]), 8), str(path))
    result = run_cli("drcn.runtime.tensorrt.cli", "build", "--onnx", str(path), "--engine", str(tmp_path / "e8.plan"),
                     "--flavour", "rtx", "--tile", "32", "--batch", "2")
    assert result.returncode == 0, result.stderr
    sidecar = (tmp_path / "e8.plan.json").read_text()
    assert '"self_ensemble": 8' in sidecar


def test_wrapping_twice_or_a_frame_graph_is_refused(tiny_model_files):
    plain = load_onnx(tiny_model_files[1])
    wrapped = build_ensemble_graph(plain, 2)
    with pytest.raises(DrcnError, match="already averages 2"):
        build_ensemble_graph(wrapped, 2)
    with pytest.raises(DrcnError, match="wraps a Y graph"):
        build_ensemble_graph(build_frame_graph(plain, model_info(plain), "gray", 2), 2)
    assert build_ensemble_graph(plain, 1) is plain
    assert set(SUBSETS) == {1, 2, 4, 8}


def test_drcn_export_writes_checked_ensemble_graphs_and_drcn_run_keeps_them_single(tiny_model_files, tmp_path,
                                                                                  cache):
    import drcn
    from drcn.images import write_image

    weights, plain_onnx = map(str, tiny_model_files)
    y8, rgb4 = tmp_path / "y8.onnx", tmp_path / "rgb4.onnx"
    result = run_cli("drcn.export.cli", "--onnx", str(y8), "--weights", weights, "--ensemble", "8")
    assert result.returncode == 0, result.stderr
    assert "self-ensemble of 8" in result.stdout and "max |diff|" in result.stdout
    # Weights kept as trained, so the frame graph can be compared with the host path on the plain graph.
    result = run_cli("drcn.export.cli", "--onnx", str(rgb4), "--weights", weights, "--rgb", "--ensemble", "4",
                     "--no-fp16-grid")
    assert result.returncode == 0, result.stderr
    assert model_info(load_onnx(rgb4)).self_ensemble == 4 and model_info(load_onnx(rgb4)).kind == "rgb"
    bad = run_cli("drcn.export.cli", "--onnx", str(tmp_path / "x.onnx"), "--weights", weights, "--ensemble", "3")
    assert bad.returncode != 0 and "--ensemble" in bad.stderr and "Traceback" not in bad.stderr

    image = np.random.default_rng(6).integers(0, 256, (22, 30, 3), dtype=np.uint8)
    # The graph with the ensemble inside gives drcn-run's --ensemble on the plain graph.
    with drcn.Upscaler(str(y8), backend="onnxruntime", tile=16) as inside, \
            drcn.Upscaler(plain_onnx, backend="onnxruntime", tile=16, ensemble=8) as outside:
        assert "8 flips/rotations inside the graph" in inside.description
        diff = np.abs(inside.upscale(image).astype(int) - outside.upscale(image).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.002
    with drcn.Upscaler(str(rgb4), backend="onnxruntime", tile=16) as inside, \
            drcn.Upscaler(plain_onnx, backend="onnxruntime", tile=16, ensemble=4, path="host") as outside:
        diff = np.abs(inside.upscale(image).astype(int) - outside.upscale(image).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.002
    write_image(tmp_path / "in.png", image)
    for model, message in ((y8, "already averages 8"), (rgb4, "already averages 4")):
        twice = run_cli("drcn.runtime.run_cli", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--onnx",
                        str(model), "--backend", "onnxruntime", "--ensemble", "2")
        assert twice.returncode != 0 and message in twice.stderr and "Traceback" not in twice.stderr
    frame = tmp_path / "rgb1.onnx"
    assert run_cli("drcn.export.cli", "--onnx", str(frame), "--weights", weights, "--rgb").returncode == 0
    outside = run_cli("drcn.runtime.run_cli", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--onnx",
                      str(frame), "--backend", "onnxruntime", "--ensemble", "2")
    assert outside.returncode != 0 and "drcn-export --rgb --ensemble 2" in outside.stderr


def test_an_int8_sibling_with_another_ensemble_is_not_used(tiny_model_files, tmp_path):
    import onnx

    from drcn.onnx_meta import int8_sibling

    plain = load_onnx(tiny_model_files[1])
    int8_like = build_ensemble_graph(plain, 2)
    for prop in int8_like.metadata_props:
        if prop.key == "drcn.precision":
            prop.value = "int8"
    onnx.save(plain, str(tmp_path / "m.onnx"))
    onnx.save(int8_like, str(tmp_path / "m_int8.onnx"))
    assert int8_sibling(tmp_path / "m.onnx") is None
    onnx.save(build_ensemble_graph(plain, 2), str(tmp_path / "m.onnx"))
    assert int8_sibling(tmp_path / "m.onnx") == tmp_path / "m_int8.onnx"


def test_the_pytorch_frame_model_averages_the_same_transforms(tiny_model_files):
    torch = pytest.importorskip("torch")
    from drcn.frame_model import FrameModel
    from drcn.weights import load_model

    plain = load_onnx(tiny_model_files[1])
    graph = build_frame_graph(build_ensemble_graph(plain, 8), model_info(build_ensemble_graph(plain, 8)), "rgb", 2)
    x = np.random.default_rng(7).random((1, 3, 11, 16), np.float32)
    module = FrameModel(load_model(str(tiny_model_files[0])), "rgb", 2, ensemble=8).eval()
    with torch.inference_mode():
        got = module(torch.from_numpy(x)).numpy()
    diff = np.abs(np.floor(got * 255 + 0.5) - np.floor(_run(graph)(x) * 255 + 0.5))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
