"""Frame graphs survive the fp16 storage that converters apply by default (ovc compresses weights to fp16, pnnx
stores fp16): every constant lies on the fp16 grid, so storing it in fp16 changes no 8-bit output (floor: >= 99.99%
of values equal, none off by more than one level), checked both the way those tools store (every float32
initializer and Constant rounded to fp16, run in ONNX Runtime) and through OpenVINO's own converter."""

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from drcn import frame, matlab  # noqa: E402
from drcn.export.frame_export import Agreement, export_frame_graph, stored_in_fp16  # noqa: E402
from drcn.onnx_files import load_onnx  # noqa: E402
from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from drcn.samples import SAMPLE_NAMES, load_sample  # noqa: E402


def _frames(kind: str, scale: int):
    for name in SAMPLE_NAMES:
        photo = load_sample(name)
        if kind == "gray":
            photo = matlab.luma(photo)
        elif photo.ndim == 2:
            continue
        yield matlab.imresize(matlab.modcrop(photo, scale)[:180, :240], 1.0 / scale)


def _agreement(run_a, run_b, kind: str, scale: int) -> Agreement:
    agreement = Agreement()
    for lr in _frames(kind, scale):
        x = frame.to_input(lr)
        agreement.add(frame.from_output(run_a(x)), frame.from_output(run_b(x)))
    return agreement


@pytest.mark.parametrize("kind, scale", [("rgb", 2), ("rgb", 3), ("gray", 4)])
def test_stored_in_fp16_the_frame_graph_gives_the_same_output(tiny_model_files, tmp_path, kind, scale):
    graph, stored = tmp_path / "g.onnx", tmp_path / "stored.onnx"
    made = export_frame_graph(tiny_model_files[1], graph, kind, scale)
    assert made.stored is not None and made.stored.fraction <= 1e-4
    assert {p.key: p.value for p in load_onnx(graph).metadata_props}["drcn.weights_grid"].startswith("fp16")
    stored_in_fp16(graph, stored)
    a, b = OnnxRuntimeBackend(str(graph)), OnnxRuntimeBackend(str(stored))
    agreement = _agreement(a.run, b.run, kind, scale)
    assert agreement.fraction <= 1e-4 and agreement.worst <= 1, (agreement.fraction, agreement.worst)

    # Without the grid the same storage changes whole levels: the check above can fail.
    plain, plain_stored = tmp_path / "p.onnx", tmp_path / "p_stored.onnx"
    export_frame_graph(tiny_model_files[1], plain, kind, scale, fp16_grid=False)
    stored_in_fp16(plain, plain_stored)
    c, d = OnnxRuntimeBackend(str(plain)), OnnxRuntimeBackend(str(plain_stored))
    assert _agreement(c.run, d.run, kind, scale).fraction > 1e-3


def test_openvino_s_fp16_compression_changes_nothing(tiny_model_files, tmp_path):
    ov = pytest.importorskip("openvino")
    graph = tmp_path / "g.onnx"
    export_frame_graph(tiny_model_files[1], graph, "rgb", 3)
    core, compiled = ov.Core(), {}
    for compress in (False, True):
        xml = tmp_path / f"m_{compress}.xml"
        ov.save_model(ov.convert_model(str(graph)), str(xml), compress_to_fp16=compress)
        compiled[compress] = core.compile_model(core.read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    agreement = _agreement(lambda x: compiled[False](x)[0], lambda x: compiled[True](x)[0], "rgb", 3)
    assert agreement.fraction <= 1e-4 and agreement.worst <= 1, (agreement.fraction, agreement.worst)
