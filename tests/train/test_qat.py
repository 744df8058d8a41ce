"""drcn-qat: the QDQ graph run in PyTorch is the graph ONNX Runtime runs; fine-tuning writes the same graph with
better weights (and only then), resumes exactly, and refuses wrong inputs in one line."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'drcn[int8]')")
ort = pytest.importorskip("onnxruntime")

from drcn.onnx_meta import int8_sibling, read_onnx_info  # noqa: E402


@pytest.fixture(scope="module")
def tiny_pair(tiny_model_files, tmp_path_factory):
    """(fp32, int8) graphs of the tiny model, side by side as drcn-export names them: everything quantized with
    NNCF's own ranges at every scale (one graph serves x2-x4), which leaves fine-tuning something to win (with the
    last conv in float, as drcn-export keeps it, the tiny random model's INT8 output scores above its fp32 teacher's)."""
    from drcn.export import int8 as int8_export
    from drcn.export.int8_ranges import study_scale

    folder = tmp_path_factory.mktemp("qat")
    fp32 = folder / "tiny.onnx"
    fp32.write_bytes(tiny_model_files[1].read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(int8_export, "study_scale",
                      lambda *args, **kwargs: study_scale(*args, **{**kwargs, "factors": (1.0,)}))
        patch.setattr(int8_export, "candidates", lambda model: [int8_export.Candidate("everything quantized")])
        made = int8_export.export_int8(fp32, folder / "tiny_int8.onnx", limit=10.0, pixel_fraction=1e6)
    assert [g.scales for g in made.graphs] == [(2, 3, 4)]
    return fp32, folder / "tiny_int8.onnx"


def ort_run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_the_graph_in_pytorch_is_the_graph(tiny_pair):
    from drcn.train.qat_model import GraphNetwork

    fp32, int8 = onnx.load(tiny_pair[0]), onnx.load(tiny_pair[1])
    x = np.random.default_rng(1).random((2, 1, 30, 26), dtype=np.float32)
    with torch.no_grad():
        exact = GraphNetwork(fp32)(torch.from_numpy(x)).numpy()
        quantized = GraphNetwork(int8, fp32)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(exact, ort_run(fp32, x), atol=1e-5)
    # ONNX Runtime fuses Q/DQ into integer kernels: equal up to the odd tie rounded the other way
    assert np.abs(quantized - ort_run(int8, x)).mean() < 0.1 / 255
    assert np.abs(quantized - exact).max() > 1e-4      # and it is quantized


def test_weights_stay_tied_and_untrained_write_back_is_the_graph(tiny_pair):
    from drcn.train.qat_model import GraphNetwork, write_back

    fp32, int8 = onnx.load(tiny_pair[0]), onnx.load(tiny_pair[1])
    network = GraphNetwork(int8, fp32)
    recursive = [k for k in network.params if "recursive_weight" in k]
    assert len(recursive) == 1                          # one parameter for the D uses of the recursion
    before = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    after = {i.name: onnx.numpy_helper.to_array(i) for i in write_back(int8, network).graph.initializer}
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    with torch.no_grad():
        network.params[recursive[0]].mul_(1.5)
    changed = {i.name: onnx.numpy_helper.to_array(i) for i in write_back(int8, network).graph.initializer}
    assert any(v.dtype == np.int8 and not np.array_equal(v, before[k]) for k, v in changed.items())


def test_learned_scales_are_written_back(tiny_pair):
    from drcn.train.qat_model import GraphNetwork, write_back

    fp32, int8 = onnx.load(tiny_pair[0]), onnx.load(tiny_pair[1])
    network = GraphNetwork(int8, fp32, learn_scales=True)
    assert network.scale_params                         # one parameter per activation quantizer
    name, key = next(iter(network.scale_params.items()))
    with torch.no_grad():
        network.params[key].mul_(2.0)
    written = {i.name: onnx.numpy_helper.to_array(i) for i in write_back(int8, network).graph.initializer}
    original = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    assert written[name] == pytest.approx(2.0 * original[name])
    tuned = write_back(int8, network)
    x = np.random.default_rng(3).random((1, 1, 24, 20), dtype=np.float32)
    with torch.no_grad():
        mine = network(torch.from_numpy(x)).numpy()
    assert np.abs(mine - ort_run(tuned, x)).mean() < 0.1 / 255
    with torch.no_grad():
        network.params[key].fill_(-1.0)
    with pytest.raises(Exception, match="scale"):
        write_back(int8, network)


def qat_config(tiny_pair, image_folder, tmp_path, **kw):
    from drcn.train.qat import QatConfig

    base = dict(int8=str(tiny_pair[1]), fp32=str(tiny_pair[0]), data=(str(image_folder),),
                out=str(tmp_path / "tuned_int8.onnx"), steps=12, batch=4, lr=3e-3, patch=17, stride=8, eval_every=4,
                calib=(str(image_folder),), cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    return QatConfig(**base)


def test_fine_tuning_improves_and_writes_a_graph_the_runtime_takes(tiny_pair, image_folder, tmp_path):
    from drcn.train.qat import fine_tune
    from drcn.train.qat_model import GraphNetwork

    result = fine_tune(qat_config(tiny_pair, image_folder, tmp_path), progress=False)
    assert result.path is not None, result
    assert min(result.best_db.values()) > min(result.start_db.values())
    tuned = onnx.load(result.path)
    assert read_onnx_info(result.path) == read_onnx_info(tiny_pair[1])     # the same model's INT8 graph
    record = json.loads({p.key: p.value for p in tuned.metadata_props}["drcn.int8"])
    assert record["qat"]["change_db_after"] == result.best_db and record["qat"]["best_step"] == result.best_step
    # what was scored in PyTorch is what ONNX Runtime runs from the file
    x = np.random.default_rng(2).random((1, 1, 24, 24), dtype=np.float32)
    with torch.no_grad():
        mine = GraphNetwork(tuned, onnx.load(tiny_pair[0]))(torch.from_numpy(x)).numpy()
    assert np.abs(mine - ort_run(tuned, x)).mean() < 0.1 / 255
    # in place of the shipped one it is the fp32 graph's sibling
    sibling = tiny_pair[0].with_name("tiny_int8.onnx")
    original = sibling.read_bytes()
    try:
        sibling.write_bytes(result.path.read_bytes())
        assert int8_sibling(tiny_pair[0]) == sibling
    finally:
        sibling.write_bytes(original)


def test_resume_continues_exactly(tiny_pair, image_folder, tmp_path, monkeypatch):
    from drcn.train.data import PatchSet
    from drcn.train.qat import checkpoint_path, fine_tune

    straight = fine_tune(qat_config(tiny_pair, image_folder, tmp_path / "a", steps=8), progress=False)
    sample, calls = PatchSet.sample, []

    def interrupted(self, *args, **kwargs):        # Ctrl-C during step 6, after the checkpoint of step 4
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(PatchSet, "sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(qat_config(tiny_pair, image_folder, tmp_path / "b", steps=8), progress=False)
    monkeypatch.setattr(PatchSet, "sample", sample)
    assert checkpoint_path(tmp_path / "b" / "tuned_int8.onnx").is_file()
    assert not (tmp_path / "b" / "tuned_int8.onnx").exists()
    resumed = fine_tune(qat_config(tiny_pair, image_folder, tmp_path / "b", steps=8), resume=True, progress=False)
    assert resumed.best_db == straight.best_db and resumed.best_step == straight.best_step
    assert onnx.load(resumed.path).graph == onnx.load(straight.path).graph


def test_nothing_is_written_when_no_step_beats_the_start(tiny_pair, image_folder, tmp_path):
    from drcn.train.qat import fine_tune

    result = fine_tune(qat_config(tiny_pair, image_folder, tmp_path, lr=0.0, steps=4, eval_every=2), progress=False)
    assert result.path is None and result.best_step == 0
    assert not (tmp_path / "tuned_int8.onnx").exists()


@pytest.mark.parametrize("case", ["no-fp32", "other-model", "out-is-input", "not-int8", "no-data"])
def test_cli_errors_are_one_line(case, tiny_pair, tiny_model_files, image_folder, tmp_path):
    from conftest import run_cli

    fp32, int8 = tiny_pair
    args = [str(int8), "--data", str(image_folder), "--out", str(tmp_path / "o_int8.onnx"), "--steps", "2"]
    if case == "no-fp32":
        lone = tmp_path / "lone_int8.onnx"
        lone.write_bytes(int8.read_bytes())
        args[0] = str(lone)
        expected = "--fp32"
    elif case == "other-model":
        import torch as t

        from drcn import ModelConfig
        from drcn.export.exporter import export_model
        from drcn.model import DRCN
        from drcn.weights import save_weights

        t.manual_seed(9)
        save_weights(tmp_path / "other.safetensors", DRCN(ModelConfig(filters=8, recursions=2, scales=(2, 3, 4))))
        export_model(tmp_path / "other.onnx", weights=str(tmp_path / "other.safetensors"))
        args += ["--fp32", str(tmp_path / "other.onnx")]
        expected = "not the model"
    elif case == "out-is-input":
        args[args.index("--out") + 1] = str(int8)
        expected = "--out"
    elif case == "not-int8":
        copy = tmp_path / "copy.onnx"
        copy.write_bytes(fp32.read_bytes())
        args[0] = str(copy)
        args += ["--fp32", str(fp32)]
        expected = "not an INT8 graph"
    else:
        args[args.index("--data") + 1] = str(tmp_path / "missing")
        expected = "no such folder"
    result = run_cli("drcn.train.qat_cli", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
