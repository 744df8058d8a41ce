"""INT8 graphs per scale: ``drcn-export --int8`` writes the graph for the smallest scale as the file asked for and,
where another scale's activation ranges differ, ``<name>_x<s>.onnx`` beside it, each naming its scales; a run at scale
s finds the graph made for s (x2.5: x3's) beside the file or beside the shipped model; a stale or missing one is said
in one line and the check decides on what is there; the check runs per scale and its cache key carries the graph's
checksum and the scales."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'drcn[int8]')")
pytest.importorskip("onnxruntime")

from drcn.onnx_meta import int8_scales, int8_sibling, read_onnx_info  # noqa: E402


def _record(path):
    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["drcn.int8"])


@pytest.fixture(scope="module")
def per_scale(tiny_model_files, tmp_path_factory, monkeypatch_module):
    """The tiny model exported with x2's ranges searched among (1,) and x3's and x4's among (2,): three graphs."""
    from drcn.export import int8 as int8_export
    from drcn.export.int8_ranges import study_scale

    def forced(model, scale, *args, **kwargs):
        return study_scale(model, scale, *args, **{**kwargs, "factors": (1.0,) if scale == 2 else (2.0,)})

    monkeypatch_module.setattr(int8_export, "study_scale", forced)
    folder = tmp_path_factory.mktemp("per_scale")
    fp32 = folder / "tiny.onnx"
    fp32.write_bytes(tiny_model_files[1].read_bytes())
    stale = folder / "tiny_int8_x2.onnx"           # an older export's x2 graph: x2 is now served by tiny_int8.onnx
    stale.write_bytes(b"old")
    made = int8_export.export_int8(fp32, folder / "tiny_int8.onnx", limit=10.0, pixel_fraction=100.0)
    return fp32, made


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_each_scale_gets_the_graph_of_its_ranges(per_scale):
    fp32, made = per_scale
    names = [g.path.name for g in made.graphs]
    assert names == ["tiny_int8.onnx", "tiny_int8_x3.onnx", "tiny_int8_x4.onnx"]
    assert [g.scales for g in made.graphs] == [(2,), (3,), (4,)] and [g.factor for g in made.graphs] == [1.0, 2, 2]
    assert not (fp32.parent / "tiny_int8_x2.onnx").exists() and made.removed == [fp32.parent / "tiny_int8_x2.onnx"]
    for graph in made.graphs:
        record = _record(graph.path)
        assert record["scales"] == list(graph.scales) and record["range_factor"] == graph.factor
        assert set(record["ranges"]) == {"x2", "x3", "x4"} and read_onnx_info(graph.path).precision == "int8"
        assert int8_scales(graph.path) == graph.scales
    # the x3 graph's activation scales are the x2 graph's times 2; its weights are the same
    x2, x3 = (onnx.load(str(g.path)) for g in made.graphs[:2])
    from drcn.export.int8_ranges import activation_quantizers

    inits2 = {i.name: onnx.numpy_helper.to_array(i) for i in x2.graph.initializer}
    inits3 = {i.name: onnx.numpy_helper.to_array(i) for i in x3.graph.initializer}
    activations = {q.input[1] for q in activation_quantizers(x2)}
    assert activations
    for name, value in inits2.items():
        np.testing.assert_allclose(inits3[name], value * (2 if name in activations else 1), rtol=1e-6)


def test_a_run_finds_the_graph_made_for_its_scale(per_scale):
    fp32, made = per_scale
    said = []
    assert int8_sibling(fp32, 2, said.append).name == "tiny_int8.onnx"
    assert int8_sibling(fp32, 3, said.append).name == "tiny_int8_x3.onnx"
    assert int8_sibling(fp32, 2.5, said.append).name == "tiny_int8_x3.onnx"      # the next integer scale up
    assert int8_sibling(fp32, 4, said.append).name == "tiny_int8_x4.onnx"
    assert int8_sibling(fp32).name == "tiny_int8.onnx" and said == []


def test_a_missing_or_stale_per_scale_graph_is_said_in_one_line(per_scale, tmp_path, tiny_model_files):
    fp32, made = per_scale
    folder = tmp_path / "m"
    folder.mkdir()
    mine = folder / "tiny.onnx"
    mine.write_bytes(fp32.read_bytes())
    (folder / "tiny_int8.onnx").write_bytes(made.graphs[0].path.read_bytes())     # x2's graph only
    said = []
    assert int8_sibling(mine, 3, said.append) is None
    assert len(said) == 1 and "no INT8 graph for x3" in said[0] and "tiny_int8.onnx is for x2" in said[0]
    # another model's graph named for x3 (the shipped model's) is stale: said, never used
    from drcn.runtime.backends.select import shipped_onnx_path

    (folder / "tiny_int8_x3.onnx").write_bytes(int8_sibling(shipped_onnx_path()).read_bytes())
    said.clear()
    assert int8_sibling(mine, 3, said.append) is None
    assert any("tiny_int8_x3.onnx is not an INT8 graph of tiny.onnx for x3" in line for line in said)
    # x2's graph put where x3's belongs is not x3's either
    (folder / "tiny_int8_x3.onnx").write_bytes(made.graphs[0].path.read_bytes())
    said.clear()
    assert int8_sibling(mine, 3, said.append) is None and said
    assert int8_sibling(mine, 2, said.append) == folder / "tiny_int8.onnx"


def test_a_graph_made_for_every_scale_serves_every_scale(tiny_model_files, tmp_path):
    """An INT8 graph whose record names no scales (made before per-scale graphs) runs at any scale, as before."""
    from drcn.runtime.backends.select import shipped_onnx_path

    shipped_int8 = int8_sibling(shipped_onnx_path())
    model = onnx.load(str(shipped_int8))
    for prop in model.metadata_props:
        if prop.key == "drcn.int8":
            record = json.loads(prop.value)
            record.pop("scales", None)
            prop.value = json.dumps(record)
    (tmp_path / "m.onnx").write_bytes(shipped_onnx_path().read_bytes())
    onnx.save(model, str(tmp_path / "m_int8.onnx"))
    for scale in (2, 3, 4, 2.5):
        assert int8_sibling(tmp_path / "m.onnx", scale) == tmp_path / "m_int8.onnx"


def test_the_shipped_models_graphs_are_found_beside_a_copy_of_it(tmp_path):
    """A user's own export of the shipped weights, alone in a folder, runs with the shipped model's INT8 graphs."""
    from drcn.runtime.backends.select import shipped_onnx_path

    copy = tmp_path / "model.onnx"
    copy.write_bytes(shipped_onnx_path().read_bytes())
    for scale in (2, 3, 4):
        found = int8_sibling(copy, scale)
        if found is not None:
            assert found.parent == shipped_onnx_path().parent
            served = int8_scales(found)
            assert served is None or scale in served


def test_the_check_runs_per_scale_and_its_key_carries_the_graphs_checksum(per_scale, cache, tmp_path):
    pytest.importorskip("openvino")
    from drcn.runtime.backends import precision_check

    fp32, made = per_scale
    x2, x3 = (str(g.path) for g in made.graphs[:2])
    keys = {precision_check._verdict_path(str(fp32), x2, (2,)), precision_check._verdict_path(str(fp32), x3, (3,)),
            precision_check._verdict_path(str(fp32), x2, (2, 3, 4)), precision_check._verdict_path(str(fp32), x2)}
    assert len(keys) == 4
    changed = tmp_path / "changed_int8.onnx"
    model = onnx.load(x2)
    model.graph.initializer[0].raw_data = bytes(len(model.graph.initializer[0].raw_data))
    onnx.save(model, str(changed))
    assert precision_check._verdict_path(str(fp32), str(changed), (2,)) not in keys
    assert precision_check.check_scales(2, (2, 3, 4)) == (2,)
    assert precision_check.check_scales(2.5, (2, 3, 4)) == (2, 3)
    assert precision_check.check_scales(None, (2, 3, 4)) == (2, 3, 4)
    assert precision_check.check_scales(5, (2, 3, 4)) == (2, 3, 4)
    found = precision_check.measure(str(fp32), x3, ["int8"], capabilities=["FP32", "INT8"], scales=(3,))
    assert set(found) == {"fp32", "int8"} and set(found["int8"].change_db) == {"x3"}


_RUN = """
import sys, numpy as np
from drcn.runtime.backends.openvino_backend import OpenVINOBackend
said = []
b = OpenVINOBackend(sys.argv[1], precision="int8", for_scale=float(sys.argv[2]), log=said.append)
print(b.precision, b.spec.path if hasattr(b.spec, "path") else "", b.description.rsplit("(", 1)[1])
"""


@pytest.mark.parametrize("scale,graph", [(2, "tiny_int8.onnx"), (3, "tiny_int8_x3.onnx"), (2.5, "tiny_int8_x3.onnx")])
def test_openvino_runs_the_graph_of_the_scale_it_serves(per_scale, scale, graph, cache):
    import subprocess
    import sys

    pytest.importorskip("openvino")
    fp32, _ = per_scale
    result = subprocess.run([sys.executable, "-c", _RUN, str(fp32), str(scale)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("int8") and result.stdout.strip().endswith(f"{graph})")


def test_drcn_export_int8_scale_limits_the_export(tmp_path, tiny_model_files):
    from conftest import run_cli

    result = run_cli("drcn.export.cli", "--onnx", str(tmp_path / "m_int8.onnx"), "--int8", "--scale", "3",
                     "--weights", str(tiny_model_files[0]))
    if result.returncode == 0:
        assert int8_scales(tmp_path / "m_int8.onnx") == (3,) and "int8 for x3" in result.stdout
        assert "int8 ranges at x3" in result.stdout and "int8 ranges at x2" not in result.stdout
    else:   # a tiny random model may miss the bound: one line, nothing written
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m_int8.onnx").exists()
    bad = run_cli("drcn.export.cli", "--onnx", str(tmp_path / "r.onnx"), "--rgb", "--scale", "2,3")
    assert bad.returncode == 2 and "--scale 2,3: one scale" in bad.stderr


def test_an_engine_built_from_a_scales_int8_graph_serves_that_scale(per_scale, tmp_path):
    """drcn-trt build from the x3 INT8 graph: the engine's sidecar names x3 alone, and the build says so."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX is not installed (dev extra)")
    from drcn.runtime.tensorrt.build import BuildRequest, build_engine

    _, made = per_scale
    said = []
    sidecar = build_engine(BuildRequest(onnx=made.graphs[1].path, engine=tmp_path / "x3.engine", flavour="rtx",
                                        tile=32, batch=1), log=said.append)
    assert sidecar.precision == "int8" and sidecar.scales == (3.0,)
    assert any("is the INT8 graph for x3" in line for line in said)


def test_starting_from_a_given_int8_graph_keeps_its_weights(per_scale, tmp_path):
    """--int8-from: a graph drcn-qat fine-tuned keeps its weights and scope; only its ranges are chosen per scale;
    another model's INT8 graph is refused in one line."""
    from drcn.errors import DrcnError
    from drcn.export.int8 import export_int8
    from drcn.export.int8_ranges import activation_quantizers
    from drcn.runtime.backends.select import shipped_onnx_path

    fp32, made = per_scale
    given = made.graphs[0].path
    redone = export_int8(fp32, tmp_path / "again_int8.onnx", limit=10.0, pixel_fraction=100.0, start_from=given,
                         scales=[2])
    assert [g.scales for g in redone.graphs] == [(2,)] and redone.study == []
    before, after = onnx.load(str(given)), onnx.load(str(redone.path))
    quantized = {q.input[1] for q in activation_quantizers(before)}
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in before.graph.initializer if i.name not in quantized}
    now = {i.name: onnx.numpy_helper.to_array(i) for i in after.graph.initializer}
    for name, value in weights.items():
        if name in now:
            np.testing.assert_array_equal(now[name], value)
    assert _record(redone.path)["scope"].startswith(made.chosen.label)
    with pytest.raises(DrcnError, match="not an INT8 graph of"):
        export_int8(fp32, tmp_path / "x_int8.onnx", start_from=int8_sibling(shipped_onnx_path()))


def test_auto_never_takes_what_the_graphs_own_export_measured_past_the_bound(per_scale, tmp_path):
    """The x3 graph of the shipped model was chosen with f32 float parts; its export measured its bf16 float parts
    past the bound on 80 calibration images: auto does not offer them, and says why, whatever the check's few images
    would say."""
    from drcn.runtime.backends import precision_check
    from drcn.runtime.backends.openvino_backend import choose_precision

    _, made = per_scale
    model = onnx.load(str(made.graphs[1].path))
    for prop in model.metadata_props:
        if prop.key == "drcn.int8":
            record = json.loads(prop.value)
            record["pixels"] = {"fp32": {"scale": "x3", "max": 8, "over4_pct": 0.0029},
                                "bf16": {"scale": "x3", "max": 14, "over4_pct": 0.0112}}
            prop.value = json.dumps(record)
    graph = tmp_path / "g_int8_x3.onnx"
    onnx.save(model, str(graph))
    found = precision_check.export_breaches(str(graph), ["FP32", "INT8", "BF16"])
    assert set(found) == {"int8"} and "0.0112%" in found["int8"] and "float parts bf16" in found["int8"]
    assert precision_check.export_breaches(str(graph), ["FP32", "INT8"]) == {}    # f32 float parts: within
    asked = []
    precision, why = choose_precision("auto", ["FP32", "INT8", "BF16"], True,
                                      lambda c: asked.append(c) or {"fp32": precision_check.Verdict("fp32", {}, 9.0)},
                                      3, found)
    assert asked == [["int8/f32", "bf16"]] and precision == "fp32" and "int8 refused: its export measured" in why


def test_the_shipped_model_has_the_graphs_of_x2_and_x3_and_says_why_not_x4():
    from drcn.runtime.backends.select import shipped_onnx_path

    shipped = shipped_onnx_path()
    said = []
    x2, x3 = int8_sibling(shipped, 2, said.append), int8_sibling(shipped, 3, said.append)
    assert (x2.name, x3.name) == ("drcn_f64_d9_int8.onnx", "drcn_f64_d9_int8_x3.onnx") and said == []
    assert int8_scales(x2) == (2,) and int8_scales(x3) == (3,)
    assert int8_sibling(shipped, 4, said.append) is None
    assert len(said) == 1 and "its export found none within the per-pixel bound at x4" in said[0]
    for graph in (x2, x3):
        record = _record(graph)
        assert record["calibration"] == "T91, BSD200" and "qat" in record          # training images only
        fp32_parts = record["pixels"]["fp32"]
        assert fp32_parts["over4_pct"] <= 0.005 and fp32_parts["max"] <= 12           # what the export held it to
