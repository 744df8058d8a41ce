"""drcn-export --int8: a QDQ graph with symmetric activations and per-channel weights, chosen by a quantization
study, refused past its PSNR limit with nothing written; ONNX Runtime and OpenVINO run it, TensorRT-RTX builds it;
the shipped INT8 graph is the shipped model's, and auto takes it where the check on this CPU finds it fastest and
within the limit."""

import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'drcn[int8]')")
pytest.importorskip("onnxruntime")

from drcn.errors import DrcnError  # noqa: E402
from drcn.onnx_meta import int8_sibling, read_onnx_info  # noqa: E402


@pytest.fixture(scope="module")
def tiny_int8(tiny_model_files, tmp_path_factory):
    from drcn.export.int8 import export_int8

    folder = tmp_path_factory.mktemp("int8")
    fp32 = folder / "tiny.onnx"
    fp32.write_bytes(tiny_model_files[1].read_bytes())
    return fp32, export_int8(fp32, folder / "tiny_int8.onnx", limit=10.0)


def test_the_graph_is_qdq_symmetric_and_per_channel(tiny_int8):
    fp32, made = tiny_int8
    model = onnx.load(str(made.path))
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert quantize, "no QDQ nodes"
    for node in quantize:
        if len(node.input) > 2 and node.input[2] in initializers:
            assert not np.any(initializers[node.input[2]]), f"{node.name}: a non-zero zero point (TensorRT refuses)"
    per_channel = [initializers[n.input[1]] for n in quantize if n.input[1] in initializers
                   and initializers[n.input[1]].ndim == 1 and initializers[n.input[1]].size > 1]
    assert per_channel, "weights are not quantized per channel"
    info = read_onnx_info(made.path)
    record = json.loads({p.key: p.value for p in model.metadata_props}["drcn.int8"])
    assert info.precision == "int8" and record["preset"].startswith("PERFORMANCE")
    assert record["study"][0]["scope"] == "the last conv in float" and record["scope"] == made.chosen.label
    assert int8_sibling(fp32) == made.path


def test_onnxruntime_and_openvino_run_it(tiny_int8):
    import onnxruntime as ort

    from drcn.testinputs import smooth_test_input

    fp32, made = tiny_int8
    x = smooth_test_input((1, 1, 40, 52))
    reference = ort.InferenceSession(str(fp32)).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(made.path)).run(None, {"input": x})[0]
    assert got.shape == reference.shape and np.abs(got - reference).mean() < 0.05
    script = ("import sys, numpy as np\nfrom drcn.runtime.backends.openvino_backend import OpenVINOBackend\n"
              "b = OpenVINOBackend(sys.argv[1])\nprint(b.precision, b.run(np.zeros((1, 1, 24, 24), np.float32)).shape)")
    pytest.importorskip("openvino")
    result = subprocess.run([sys.executable, "-c", script, str(made.path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "int8 (1, 1, 24, 24)", result.stderr


def test_past_the_limit_nothing_is_written(tiny_model_files, tmp_path):
    from drcn.export.int8 import export_int8

    with pytest.raises(DrcnError, match="nothing written"):
        export_int8(tiny_model_files[1], tmp_path / "x_int8.onnx", limit=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_a_stale_int8_graph_is_never_used(tiny_int8, tmp_path):
    fp32, made = tiny_int8
    other = tmp_path / "shipped.onnx"
    from drcn.weights import default_weights_path

    other.write_bytes(default_weights_path().with_suffix(".onnx").read_bytes())
    (tmp_path / "shipped_int8.onnx").write_bytes(made.path.read_bytes())   # the tiny model's INT8 beside another
    assert int8_sibling(other) is None


def test_the_shipped_int8_graph_belongs_to_the_shipped_model():
    from drcn.export.int8 import MAX_INT8_PSNR_DROP
    from drcn.runtime.backends.select import shipped_onnx_path

    shipped = shipped_onnx_path()
    sibling = int8_sibling(shipped)
    assert sibling is not None and sibling.name == "drcn_f64_d9_int8.onnx"
    record = json.loads({p.key: p.value for p in onnx.load(str(sibling)).metadata_props}["drcn.int8"])
    assert all(-change <= MAX_INT8_PSNR_DROP for change in record["psnr_change_db"].values())
    assert record["calibration"] == "T91, BSD200"      # training images only, never the test sets
    assert "Set5" not in record["calibration"] and "Set14" not in record["calibration"]
    if "qat" in record:     # fine-tuned by drcn-qat: trained and chosen on training images too
        seen = " ".join(record["qat"]["data"]) + " " + record["qat"]["scored_on"]
        assert "Set5" not in seen and "Set14" not in seen
        assert min(record["qat"]["change_db_after"].values()) > min(record["qat"]["change_db_before"].values())


def test_tensorrt_rtx_builds_the_int8_graphs(tmp_path, tiny_int8):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX is not installed (dev extra)")
    from drcn.runtime.backends.select import shipped_onnx_path
    from drcn.runtime.tensorrt.build import BuildRequest, build_engine

    for graph in (tiny_int8[1].path, int8_sibling(shipped_onnx_path())):
        engine = tmp_path / f"{graph.stem}.engine"
        sidecar = build_engine(BuildRequest(onnx=graph, engine=engine, flavour="rtx", tile=64, batch=2))
        assert sidecar.precision == "int8" and engine.stat().st_size > 10_000
    with pytest.raises(DrcnError, match="INT8 graph: build it without --fp16"):
        build_engine(BuildRequest(onnx=tiny_int8[1].path, engine=tmp_path / "x.engine", flavour="rtx", fp16=True))


def test_drcn_export_int8_cli(tmp_path, tiny_model_files):
    from conftest import run_cli

    result = run_cli("drcn.export.cli", "--onnx", str(tmp_path / "m_int8.onnx"), "--int8", "--weights",
                     str(tiny_model_files[0]))
    # a tiny random model may miss the 0.05 dB limit: then it says so and writes nothing
    if result.returncode == 0:
        assert "int8 study:" in result.stdout and "wrote" in result.stdout
        assert read_onnx_info(tmp_path / "m_int8.onnx").precision == "int8"
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--int8" in lines[0] and not (tmp_path / "m_int8.onnx").exists()
    bad = run_cli("drcn.export.cli", "--onnx", str(tmp_path / "y.onnx"), "--int8", "--fp16", "--weights",
                  str(tiny_model_files[0]))
    assert bad.returncode == 2 and "--int8 with --fp16" in bad.stderr


_PARTS_PROBE = """
import sys, numpy as np
from drcn.runtime.backends.openvino_backend import OpenVINOBackend
x = np.random.default_rng(3).random((5, 3, 20, 22)).astype(np.float32)
latency = OpenVINOBackend(sys.argv[1], mode="latency")
throughput = OpenVINOBackend(sys.argv[1], mode="throughput", threads=2)
np.testing.assert_array_equal(latency.run(x), throughput.run(x))
print(latency.precision, throughput.in_flight, throughput.parts is not None)
"""


def test_frame_graphs_of_an_int8_model_have_an_int8_sibling(tiny_int8, cache):
    """drcn-run's device path wraps the Y graph and its INT8 sibling alike; OpenVINO's auto then finds the INT8 frame
    graph, and its parts (pre f32, INT8 network, post f32) keep requests in flight with the same pixels."""
    from drcn.runtime.frame_graph import cached_frame_graph

    fp32, made = tiny_int8
    frame_graph = cached_frame_graph(fp32, "rgb", 2)
    sibling = int8_sibling(frame_graph)
    assert sibling is not None and sibling.parent == frame_graph.parent
    info = read_onnx_info(sibling)
    assert (info.kind, info.scale, info.precision) == ("rgb", 2, "int8")
    assert "drcn.int8" in {p.key: p.value for p in onnx.load(str(sibling)).metadata_props}   # how it was made
    x3 = cached_frame_graph(fp32, "rgb", 3)
    (x3.parent / f"{x3.stem}_int8.onnx").write_bytes(sibling.read_bytes())   # the x2 INT8 graph beside the x3 one
    assert int8_sibling(x3) is None                                             # is not its INT8 graph
    pytest.importorskip("openvino")
    result = subprocess.run([sys.executable, "-c", _PARTS_PROBE, str(sibling)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    precision, in_flight, _ = result.stdout.split()
    assert precision == "int8" and int(in_flight) >= 1


def test_drcn_export_rgb_int8_writes_a_checked_int8_frame_graph(tmp_path, tiny_model_files):
    from conftest import run_cli

    target = tmp_path / "m_rgb_int8.onnx"
    result = run_cli("drcn.export.cli", "--onnx", str(target), "--rgb", "--int8", "--weights",
                     str(tiny_model_files[0]))
    assert result.returncode == 0, result.stderr
    info = read_onnx_info(target)
    assert (info.kind, info.scale, info.precision) == ("rgb", 2, "int8")
    assert "checked: ONNX Runtime vs drcn-run's host path" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_derived_int8_graphs_are_requantized_when_the_recipe_changes(tiny_int8, tmp_path):
    from drcn.benchmarks.variants import int8_graph
    from drcn.export.int8 import RECIPE, recipe_of

    fp32, made = tiny_int8
    assert recipe_of(made.path) == RECIPE
    graph = tmp_path / "variant.onnx"
    graph.write_bytes(fp32.read_bytes())
    old = onnx.load(str(made.path))
    for prop in old.metadata_props:
        if prop.key == "drcn.int8":
            record = json.loads(prop.value)
            record.pop("recipe")
            prop.value = json.dumps(record)
    onnx.save(old, str(tmp_path / "variant_int8.onnx"))
    assert recipe_of(tmp_path / "variant_int8.onnx") == 1 and int8_sibling(graph) is not None
    assert recipe_of(int8_graph(graph)) == RECIPE


def test_the_precision_check_runs_on_this_cpu_once(tiny_int8, cache, monkeypatch):
    """auto's evidence, measured for real on whatever CPU runs the tests: every precision OpenVINO offers here
    against fp32 on the calibration images, cached so a second start measures nothing."""
    ov = pytest.importorskip("openvino")
    from drcn.runtime.backends import precision_check
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    fp32, made = tiny_int8
    capabilities = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    candidates = precision_check.offered(capabilities, True)
    said = []
    backend = OpenVINOBackend(str(fp32), log=said.append, for_scale=2)
    if not candidates:
        assert backend.precision == "fp32" and not said
        return
    assert precision_check.cached(str(fp32), str(made.path), (2, 3, 4)) is None     # a run at x2 checks x2 only
    verdicts = precision_check.cached(str(fp32), str(made.path), (2,))
    assert set(verdicts) == {"fp32", *candidates}
    assert all(v.ms_per_window > 0 and set(v.change_db) == {"x2"} for v in verdicts.values())
    assert verdicts["fp32"].worst == 0.0
    chosen = verdicts[backend.verdict_name]
    assert chosen.ok and chosen.ms_per_window == min(v.ms_per_window for v in verdicts.values() if v.ok)
    for v in verdicts.values():
        if not v.ok:
            assert v.refusal() in backend.description
    monkeypatch.setattr(precision_check, "measure", lambda *_, **__: pytest.fail("measured twice"))
    assert OpenVINOBackend(str(fp32), for_scale=2).precision == backend.precision


def test_the_export_and_the_on_cpu_check_measure_the_worst_pixels(tiny_int8):
    """Issue 33: beside the PSNR change, the per-pixel deviation of the 8-bit Y output from fp32, per scale, in the
    export's record and in the verdicts ``auto`` chooses by (measured for real on this CPU's kernels)."""
    pytest.importorskip("openvino")
    from drcn.runtime.backends import precision_check

    fp32, made = tiny_int8
    for precision, pixels in made.chosen.pixels.items():
        assert pixels["scale"] in ("x2", "x3", "x4") and pixels["values"] > 0 and 0 <= pixels["over4_pct"] <= 100
        assert pixels["max"] >= pixels["p99.99"] >= 0
    record = json.loads({p.key: p.value for p in onnx.load(str(made.path)).metadata_props}["drcn.int8"])
    assert record["pixels"] == made.graphs[0].pixels and all("pixels" in c for c in record["study"])
    candidates = precision_check.offered(precision_check.cpu_capabilities(), True)
    found = precision_check.measure(str(fp32), str(made.path), candidates)
    assert found["fp32"].ok and found["fp32"].worst_pixels[1].max == 0       # fp32 against itself: exact
    values = found["fp32"].worst_pixels[1].values
    for name in candidates:
        verdict = found[name]
        assert set(verdict.pixels) == set(verdict.change_db) and verdict.worst_pixels[1].values == values
        assert verdict.ok == (verdict.worst >= -precision_check.MAX_PSNR_DROP and not verdict.pixel_breach)
