"""drcn-export: tying, parity, metadata, --depth, --fp16, bad input -- on a tiny model and the shipped one."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from drcn import DrcnError, ModelConfig  # noqa: E402
from drcn.export import cli  # noqa: E402
from drcn.export.checks import graph_report, run_onnx  # noqa: E402
from drcn.testinputs import smooth_test_input  # noqa: E402
from drcn.export.exporter import export_model  # noqa: E402
from drcn.model import DRCN  # noqa: E402
from drcn.onnx_meta import read_onnx_info  # noqa: E402
from drcn.checksums import file_sha256  # noqa: E402
from drcn.weights import default_weights_path, load_model, save_weights  # noqa: E402


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = DRCN(ModelConfig(filters=8, recursions=4, scales=(2, 3)))
    with torch.no_grad():  # a trained-looking model: non-trivial weights everywhere
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.ensemble.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(path, model)
    return path


def conv_weight_inputs(path):
    graph = onnx.load(str(path)).graph
    identities = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    names = []
    for node in graph.node:
        if node.op_type == "Conv":
            name = node.input[1]
            while name in identities:
                name = identities[name]
            names.append(name)
    return names, {i.name for i in graph.initializer}


@pytest.mark.parametrize("fold", [True, False])
def test_tied_unrolled_graph_matches_pytorch(tiny_weights, tmp_path, fold):
    out = tmp_path / "m.onnx"
    result = export_model(out, weights=str(tiny_weights), fold_output=fold)
    names, initializers = conv_weight_inputs(out)
    assert set(names) <= initializers and len(set(names)) == 5
    assert len(names) == (2 + 4 + 4 + 1 if fold else 2 + 4 + 2 * 4)
    # The recursive weight is read by exactly D Conv nodes.
    assert max(names.count(n) for n in set(names)) == 4
    onnx.checker.check_model(str(out), full_check=True)
    assert not list(tmp_path.glob("*.data")) and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    # Parity at a shape never used while exporting, batch > 1.
    x = smooth_test_input((3, 1, 37, 59), seed=4)
    got, runner = run_onnx(out, x)
    with torch.inference_mode():
        want = load_model(tiny_weights)(torch.from_numpy(x)).numpy()
    assert runner == "ONNX Runtime CPU"
    assert np.abs(got - want).max() <= 1e-5 and result.max_abs_diff <= 1e-4


def test_metadata_round_trip(tiny_weights, tmp_path):
    out = tmp_path / "m.onnx"
    export_model(out, weights=str(tiny_weights))
    info = read_onnx_info(out)
    assert info.config == ModelConfig(filters=8, recursions=4, scales=(2, 3))
    assert (info.depth, info.halo, info.receptive_field, info.precision) == (4, 8, 17, "fp32")
    assert info.weights_sha256 == file_sha256(tiny_weights)
    assert info.ensemble == pytest.approx([0.1, 0.2, 0.3, 0.4])
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["drcn.scales"] == "2,3" and "BT.601" in props["drcn.colour"]


def test_file_without_metadata_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(DrcnError, match="no drcn metadata"):
        read_onnx_info(path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(DrcnError, match="not an ONNX model"):
        read_onnx_info(tmp_path / "junk.onnx")


def test_depth_export_refits_and_matches(tiny_weights, tmp_path, image_folder):
    out = tmp_path / "d2.onnx"
    result = export_model(out, weights=str(tiny_weights), depth=2, calib=[str(image_folder)])
    info = read_onnx_info(out)
    assert info.depth == 2 and info.halo == 6 and len(info.ensemble) == 2
    assert graph_report(out).conv_nodes == 2 + 2 + 2 + 1
    # Least squares can only improve on (or equal) the renormalised trained weights on the same patches.
    assert result.refit.psnr_refit >= result.refit.psnr_renormalised - 1e-9
    assert result.max_abs_diff <= 1e-4
    with pytest.raises(DrcnError, match="between 1 and"):
        export_model(tmp_path / "d9.onnx", weights=str(tiny_weights), depth=9)
    assert not (tmp_path / "d9.onnx").exists()


def test_fp16_export(tiny_weights, tmp_path):
    out = tmp_path / "h.onnx"
    result = export_model(out, weights=str(tiny_weights), fp16=True)
    graph = onnx.load(str(out)).graph
    conv_weights = {i.name: i.data_type for i in graph.initializer if i.name.endswith("weight")}
    assert conv_weights and set(conv_weights.values()) == {onnx.TensorProto.FLOAT16}
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert read_onnx_info(out).precision == "fp16"
    assert result.fp16.peak_activation > 0 and abs(result.fp16.psnr_fp32 - result.fp16.psnr_fp16) < 0.1
    assert 0 < result.max_abs_diff <= 1e-2


def test_static_shape(tiny_weights, tmp_path):
    out = tmp_path / "s.onnx"
    export_model(out, weights=str(tiny_weights), static_shape=(2, 30, 40))
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 1, 30, 40]


@pytest.mark.parametrize("args, message", [
    (["--onnx", "x.txt"], "must end in .onnx"),
    (["--onnx", "m.onnx", "--weights", "/no/such.safetensors"], "no such weights file"),
    (["--onnx", "m.onnx", "--depth", "0"], "must be at least 1"),
    (["--onnx", "m.onnx", "--opset", "13"], "opset 18 or newer"),
    (["--onnx", "m.onnx", "--shape", "4x3"], "not NxHxW"),
    ([], "--onnx"),
    (["--onnx", "{file}/m.onnx"], "cannot write here"),
    (["--onnx", "m.onnx", "--weights", "{mismatch}"], "do not match"),
])
def test_bad_input(args, message, tmp_path, tiny_weights):
    from safetensors.torch import save_file

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "file").write_text("a file, not a folder")
    # Tensors of an F=16 model under a config that says F=8.
    wrong = {k: v.contiguous() for k, v in DRCN(ModelConfig(filters=16, recursions=4)).state_dict().items()}
    save_file(wrong, str(inputs / "mismatch.safetensors"),
              metadata={"drcn.config": ModelConfig(filters=8, recursions=4).to_json()})
    args = [a.format(file=inputs / "file", mismatch=inputs / "mismatch.safetensors") for a in args]
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "drcn.export.cli", *args], capture_output=True, text=True,
                            cwd=work, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not list(work.iterdir())


@pytest.mark.skipif(not default_weights_path().is_file(), reason="the shipped model is not in weights/")
def test_shipped_model_export_as_written(tmp_path, capsys):
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(["--onnx", "model.onnx"]) == 0
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "5 distinct weights" in printed and "verified" in printed
    out = tmp_path / "model.onnx"
    config = read_onnx_info(out).config
    report = graph_report(out)
    assert report.distinct_conv_weights == 5 and report.conv_nodes >= config.recursions + 4
    # One copy of the weights, whatever D is: the file is within 5% of parameters x 4 bytes.
    assert report.file_bytes <= 1.05 * config.num_parameters * 4
    onnx.checker.check_model(str(out), full_check=True)


@pytest.mark.skipif(not default_weights_path().is_file(), reason="the shipped model is not in weights/")
def test_shipped_onnx_is_the_export_of_the_shipped_weights():
    from drcn.runtime.backends.select import shipped_onnx_path

    info = read_onnx_info(shipped_onnx_path())
    assert info.weights_sha256 == file_sha256(default_weights_path()), "re-export weights/*.onnx"
    x = smooth_test_input((1, 1, 45, 61))
    got, _ = run_onnx(shipped_onnx_path(), x)
    with torch.inference_mode():
        want = load_model().eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_verification_shape_is_not_the_export_sample_shape():
    """Verification on the shape the exporter traced would hide a graph that only works for that shape."""
    from drcn.export.exporter import VERIFY_SHAPE
    from drcn.export.onnx_writer import EXPORT_SAMPLE_SHAPE

    assert all(v != e for v, e in zip(VERIFY_SHAPE, EXPORT_SAMPLE_SHAPE) if e != 1)


def test_export_rgb_and_gray_frame_graphs(tmp_path, tiny_model_files):
    from conftest import run_cli
    from drcn.onnx_meta import read_onnx_info

    weights = str(tiny_model_files[0])
    for kind, scale in (("rgb", "2"), ("gray", "3")):
        target = tmp_path / f"m_x{scale}_{kind}.onnx"
        result = run_cli("drcn.export.cli", "--onnx", str(target), f"--{kind}", "--scale", scale, "--weights", weights)
        assert result.returncode == 0, result.stderr
        assert f"the whole frame, {kind} x{scale}" in result.stdout and "checked: ONNX Runtime vs drcn-run" in result.stdout
        info = read_onnx_info(target)
        assert (info.kind, info.scale, info.channels) == (kind, int(scale), 3 if kind == "rgb" else 1)
        assert info.input_halo == 2 + -(-info.halo // int(scale))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_x2_rgb.onnx", "m_x3_gray.onnx"]
    for argv, words in ((["--rgb", "--triton", str(tmp_path / "t")], "--rgb writes the --onnx FILE"),
                        (["--rgb", "--onnx", str(tmp_path / "x.onnx"), "--fp16"], "--fp16 applies to the Y graph"),
                        (["--gray", "--onnx", str(tmp_path / "x.onnx"), "--scale", "5"], "--scale")):
        result = run_cli("drcn.export.cli", *argv, "--weights", weights)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr
