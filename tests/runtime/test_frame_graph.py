"""Whole-frame graphs (LR RGB/grey in, upscaled frame out): the phase filters are MATLAB's bicubic, the graph equals
drcn-run's host path, tiles in LR pixels equal the whole frame, PyTorch's FrameModel equals the ONNX graph, the
enlarged Y the network sees is the float32 one in every precision a backend offers, and the tools SR users run
(chaiNNer, vs-mlrt) accept the graph by their own loading rules."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from drcn import frame, matlab

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from drcn.onnx_meta import read_onnx_info  # noqa: E402
from drcn.runtime.frame_graph import ENLARGED_Y, float32_nodes  # noqa: E402


def smooth(rng, shape):
    import cv2

    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (3, 3), 0)


@pytest.fixture(scope="module")
def graphs(tiny_model_files, tmp_path_factory):
    """{(kind, scale): path} of the tiny model's frame graphs, and the Y graph."""
    from drcn.runtime.frame_graph import write_frame_graph

    folder = tmp_path_factory.mktemp("frames")
    made = {}
    for kind in ("rgb", "gray"):
        for scale in (2, 3, 4):
            made[kind, scale] = folder / f"{kind}{scale}.onnx"
            write_frame_graph(tiny_model_files[1], made[kind, scale], kind, scale)
    return made


def host_path(y_onnx, image, scale):
    from drcn.runtime.media.colour import upscale_image
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(str(y_onnx))
    return upscale_image(image, scale, lambda y: backend.run(y[None, None])[0, 0])


def run_graph(path, image):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return frame.from_output(session.run(None, {"input": frame.to_input(image)})[0])


def with_enlarged_y(model):
    """The graph with the enlarged Y (what the network sees) as a second output."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(ENLARGED_Y, onnx.TensorProto.FLOAT, None))
    return probe


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_phase_filters_are_matlab_bicubic(scale):
    rng = np.random.default_rng(scale)
    for shape in ((2, 2), (2, 7), (5, 3), (11, 13)):
        plane = rng.integers(0, 256, shape).astype(np.float64)
        want = matlab.imresize(plane, output_shape=(shape[0] * scale, shape[1] * scale))
        padded = np.pad(plane, frame.PAD, mode="symmetric")
        filters = frame.phase_filters(scale)
        got = np.zeros_like(want)
        for phase, taps in enumerate(filters):
            p, q = divmod(phase, scale)
            for i in range(shape[0]):
                for j in range(shape[1]):
                    got[i * scale + p, j * scale + q] = (padded[i:i + frame.TAPS, j:j + frame.TAPS] * taps).sum()
        np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("kind", ["rgb", "gray"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_graph_equals_the_host_path(graphs, tiny_model_files, kind, scale):
    rng = np.random.default_rng(7)
    for shape in ((2, 2), (3, 17), (23, 31)):
        image = smooth(rng, shape + ((3,) if kind == "rgb" else ()))
        got, want = run_graph(graphs[kind, scale], image), host_path(tiny_model_files[1], image, scale)
        assert got.shape == want.shape
        diff = np.abs(got.astype(int) - want.astype(int))
        assert (diff > 0).mean() <= 1e-3 and diff.max() <= 3, (shape, (diff > 0).mean(), diff.max())


@pytest.mark.datasets
@pytest.mark.slow
def test_set5_and_set14_match_the_host_path_and_its_psnr(datasets, tiny_model_files, graphs):
    """The issue's bar on real images: >= 99.9% of pixels equal, <= 3 grey levels, Y-PSNR within 0.01 dB."""
    from drcn import metrics
    from drcn.evaluation import shave_border
    from drcn.images import list_images, read_image

    for scale in (2, 3, 4):
        psnr_graph, psnr_host, differing, total, worst = [], [], 0, 0, 0
        for folder in ("Set5", "Set14"):
            for path in list_images(datasets / folder):
                hr = matlab.modcrop(read_image(path), scale)
                if hr.ndim == 3 and hr.shape[2] == 4:
                    hr = hr[:, :, :3]
                lr = matlab.imresize(hr, 1.0 / scale)
                kind = "gray" if hr.ndim == 2 else "rgb"
                got, want = run_graph(graphs[kind, scale], lr), host_path(tiny_model_files[1], lr, scale)
                diff = np.abs(got.astype(int) - want.astype(int))
                differing, total, worst = differing + int((diff > 0).sum()), total + diff.size, max(worst, diff.max())
                border = shave_border(scale)
                psnr_graph.append(metrics.psnr(matlab.luma(hr), matlab.luma(got), border))
                psnr_host.append(metrics.psnr(matlab.luma(hr), matlab.luma(want), border))
        assert differing / total <= 1e-3 and worst <= 3, (scale, differing / total, worst)
        assert abs(np.mean(psnr_graph) - np.mean(psnr_host)) < 0.01


def test_tiles_in_lr_pixels_equal_the_whole_frame(graphs):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.tiling import run_tiled

    backends = {scale: OnnxRuntimeBackend(str(graphs["rgb", scale])) for scale in (2, 3)}

    @settings(max_examples=12, deadline=None)
    @given(h=st.integers(2, 60), w=st.integers(2, 60), tile=st.integers(1, 24), scale=st.sampled_from([2, 3]),
           seed=st.integers(0, 100))
    def check(h, w, tile, scale, seed):
        backend = backends[scale]
        image = frame.to_input(smooth(np.random.default_rng(seed), (h, w, 3)))[0]
        whole = run_tiled(backend.run, image, 0, backend.spec.halo, 1, scale)
        tiled = run_tiled(backend.run, image, tile, backend.spec.halo, 3, scale)
        assert tiled.shape == whole.shape == (3, h * scale, w * scale)
        assert np.abs(frame.from_output(tiled[None]).astype(int) - frame.from_output(whole[None]).astype(int)).max() <= 1

    check()


def test_torch_frame_model_equals_the_onnx_graph(tiny_model_files, graphs):
    torch = pytest.importorskip("torch")
    from drcn.frame_model import FrameModel
    from drcn.weights import load_model

    rng = np.random.default_rng(3)
    for kind, shape in (("rgb", (19, 26, 3)), ("gray", (2, 9))):
        image = smooth(rng, shape)
        model = FrameModel(load_model(tiny_model_files[0]), kind, 3).eval()
        with torch.inference_mode():
            got = frame.from_output(model(torch.from_numpy(frame.to_input(image))).numpy())
        want = run_graph(graphs[kind, 3], image)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


_OPENVINO_PROBE = """
import sys, numpy as np, onnx
from drcn.runtime.frame_graph import ENLARGED_Y
from drcn.runtime.backends.openvino_backend import OpenVINOBackend
graph, x, out = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
model = onnx.load(graph)
model.graph.output.append(onnx.helper.make_tensor_value_info(ENLARGED_Y, onnx.TensorProto.FLOAT, None))
found = {}
for precision in ("fp32", "bf16"):
    try:
        backend = OpenVINOBackend(graph, precision=precision)
    except Exception as exc:
        assert precision == "bf16" and "does not support bf16" in str(exc), exc
        continue
    if backend.parts is None:   # the whole graph, with the enlarged Y as a second output
        compiled = backend._compiled(backend.core.read_model(model.SerializeToString(), b""), backend.config, x.shape)
        index = 1
    else:                       # bf16: the part before the network compiles apart, in f32; this is what it hands on
        compiled = backend._compiled(backend.parts[0][0], backend.parts[0][1], x.shape)
        index = 0
    request = compiled.create_infer_request()
    request.infer({0: x})
    found[precision] = np.array(request.get_output_tensor(index).data)
    backend.close()
np.savez(out, **found)
"""


def _openvino_enlarged_y(graph_path, x) -> dict:
    """OpenVINO's enlarged Y per precision, measured in a child process: its CPU plugin's threads in the test
    process made a later test's self-sent SIGINT crash pytest."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    pytest.importorskip("openvino")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        result = subprocess.run([sys.executable, "-c", _OPENVINO_PROBE, str(graph_path), str(Path(tmp) / "x.npy"),
                                 str(Path(tmp) / "out.npz")], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        with np.load(Path(tmp) / "out.npz") as found:
            return {("openvino", precision): found[precision] for precision in found.files}


def _enlarged_y_per_precision(tiny_model_files, graph_path, image):
    """{(backend, precision): the enlarged Y the network saw} for every precision each backend offers here."""
    x = frame.to_input(image)
    seen = {}
    model = onnx.load(str(graph_path))
    seen["onnxruntime", "fp32"] = ort.InferenceSession(with_enlarged_y(model).SerializeToString()).run(None, {
        "input": x})[1]
    from drcn.runtime.tensorrt.fp16 import convert_to_fp16

    converted = onnx.load_from_string(convert_to_fp16(graph_path, read_onnx_info(graph_path)).model_bytes)
    assert all(n.op_type != "Cast" for n in converted.graph.node if n.name in float32_nodes(converted))
    seen["onnxruntime", "fp16"] = ort.InferenceSession(with_enlarged_y(converted).SerializeToString()).run(
        None, {"input": x})[1]
    seen.update(_openvino_enlarged_y(graph_path, x))
    torch = pytest.importorskip("torch")
    from drcn.frame_model import FrameModel
    from drcn.weights import load_model

    info = read_onnx_info(graph_path)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        net = load_model(tiny_model_files[0]).to(dtype)
        with torch.inference_mode():
            seen["torch", precision] = FrameModel(net, info.kind, info.scale, dtype).enlarged_y(
                torch.from_numpy(x)).numpy()
    return seen


def test_the_enlarged_y_is_the_float32_one_in_every_precision(tiny_model_files, graphs):
    image = smooth(np.random.default_rng(11), (21, 28, 3))
    seen = _enlarged_y_per_precision(tiny_model_files, graphs["rgb", 2], image)
    reference = seen["onnxruntime", "fp32"]
    assert {("onnxruntime", "fp16"), ("torch", "bf16")} <= set(seen)
    for key, value in seen.items():
        # the same uint8 grid point everywhere (bf16 arithmetic here moved it by up to 3 levels); OpenVINO divides
        # by 255 as a multiplication, one float32 ulp away
        assert np.array_equal(np.rint(value * 255), np.rint(reference * 255)), key
        assert np.abs(value - reference).max() <= 1e-6, key
    # and it is MATLAB's: the uint8 Y enlarged with imresize, / 255
    host = matlab.imresize(matlab.rgb2ycbcr(image), output_shape=(42, 56))[:, :, 0] / 255.0
    np.testing.assert_allclose(reference[0, 0], host, atol=1e-6)


def _chainner_probe(model) -> tuple[int | None, int]:
    """chaiNNer's loading rules (backend/src/nodes/impl/onnx/load.py, utils.py): NCHW when dim 1 <= 4; the input
    fixed at 16, 64, 256, then 512 px; strict shape inference; scale = output / input where it divides."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value and dims[1].dim_value <= 4, "chaiNNer would read this as NHWC"
    for size in (16, 64, 256, 512):
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        shape = probe.graph.input[0].type.tensor_type.shape.dim
        shape[2].dim_value = shape[3].dim_value = size
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        if out[2].dim_value and out[3].dim_value:
            o_h, o_w = out[2].dim_value, out[3].dim_value
            return (o_w // size if o_w % size == 0 and o_h == o_w else None), out[1].dim_value
    return None, 0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_chainner_finds_the_scale_and_vs_mlrt_accepts_the_graph(graphs, scale):
    for kind, channels in (("rgb", 3), ("gray", 1)):
        model = onnx.load(str(graphs[kind, scale]))
        found, out_channels = _chainner_probe(model)
        assert (found, out_channels) == (scale, channels)
        # vs-mlrt: one input named "input", one output, 4-D NCHW float32, channels matching the clip (1 GRAY or
        # 3 RGB), output an integer multiple of the input at the tile size it runs (here 64x48).
        graph = model.graph
        assert [i.name for i in graph.input] == ["input"] and len(graph.output) == 1
        for value in (graph.input[0], graph.output[0]):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert len(value.type.tensor_type.shape.dim) == 4
            assert value.type.tensor_type.shape.dim[1].dim_value == channels
        session = ort.InferenceSession(graph and str(graphs[kind, scale]))
        out = session.run(None, {"input": np.zeros((1, channels, 48, 64), np.float32)})[0]
        assert out.shape == (1, channels, 48 * scale, 64 * scale)


def test_tensorrt_rtx_builds_engines_from_the_rgb_graph(tmp_path, graphs, image_folder):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX is not installed (dev extra)")
    from drcn.runtime.tensorrt.build import BuildRequest, build_engine

    for fp16 in (False, True):
        engine = tmp_path / f"rgb{int(fp16)}.engine"
        sidecar = build_engine(BuildRequest(onnx=graphs["rgb", 2], engine=engine, flavour="rtx", tile=64, batch=2,
                                            fp16=fp16, calib=(str(image_folder),)))
        assert engine.stat().st_size > 10_000
        assert (sidecar.kind, sidecar.scale, sidecar.channels) == ("rgb", 2, 3)
        window = 32 + 2 * sidecar.halo
        assert sidecar.profile.max == (2, 3, window, window)
        assert sidecar.precision == ("fp16" if fp16 else "fp32")


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_frame_graphs_use_only_the_portable_operators(kind):
    """The portability contract (README): every operator of a frame graph, fp32 and INT8 networks alike, is in
    PORTABLE_OPS (no Split: onnx2torch lacks it at opset 18)."""
    from drcn.onnx_files import load_onnx
    from drcn.onnx_meta import read_onnx_info
    from drcn.runtime.frame_graph import PORTABLE_OPS, build_frame_graph

    shipped = REPO / "weights"
    for name in ("drcn_f64_d9.onnx", "drcn_f64_d9_int8.onnx"):
        graph = build_frame_graph(load_onnx(shipped / name), read_onnx_info(shipped / name), kind, 2)
        used = {node.op_type for node in graph.graph.node}
        assert used <= PORTABLE_OPS, (name, sorted(used - PORTABLE_OPS))
