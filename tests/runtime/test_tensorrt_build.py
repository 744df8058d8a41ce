"""Real TensorRT engines built on this CPU-only machine with TensorRT for RTX (dev extra): FP32 and FP16 from the
FP32 graph, FP16 from an --fp16 graph, tile and whole-frame profiles, sidecars, the engine cache, and the real
parser refusing a foreign or broken ONNX with one line. Running an engine needs an RTX GPU: test_tensorrt_gpu.py."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX is not installed (pip install 'drcn[tensorrt-rtx]')")
pytest.importorskip("onnxruntime")

from drcn.errors import DrcnError  # noqa: E402
from drcn.runtime.tensorrt.build import BuildRequest, build_engine  # noqa: E402
from drcn.runtime.tensorrt.sidecar import read_sidecar  # noqa: E402
from drcn.weights import default_weights_path  # noqa: E402

SHIPPED_ONNX = default_weights_path().with_suffix(".onnx")


def build(tmp_path, onnx, name, **options):
    engine = tmp_path / name
    sidecar = build_engine(BuildRequest(onnx=onnx, engine=engine, flavour="rtx", **options))
    return engine, sidecar


def test_shipped_model_fp32_and_fp16_from_the_fp32_graph(tmp_path, image_folder):
    e32, s32 = build(tmp_path, SHIPPED_ONNX, "fp32.engine", tile=64, batch=2)
    e16, s16 = build(tmp_path, SHIPPED_ONNX, "fp16.engine", tile=64, batch=2, fp16=True,
                     calib=(str(image_folder),))
    for engine, side, precision in ((e32, s32, "fp32"), (e16, s16, "fp16")):
        assert engine.stat().st_size > 50_000, "a real plan, not a stub"
        assert read_sidecar(engine) == side
        assert (side.precision, side.flavour, side.gpu, side.halo) == (precision, "rtx", None, 13)
        assert side.targets == ("8.0", "8.6", "8.9", "12.0", "12.1")
        assert side.profile.max == (2, 1, 64 + 26, 64 + 26)
    assert s16.fp16_source == "converted" and s32.fp16_source is None
    assert e16.stat().st_size < 0.8 * e32.stat().st_size   # fp16 weights
    assert not list(tmp_path.glob("*.timing-cache")), "TensorRT-RTX must not use a timing cache"


def test_fp16_graph_whole_frame_profile_and_targets(tmp_path, tiny_model_files, image_folder):
    from drcn.export.exporter import export_model

    onnx16 = tmp_path / "tiny_fp16.onnx"
    export_model(onnx16, weights=str(tiny_model_files[0]), fp16=True, calib=[str(image_folder)])
    engine, side = build(tmp_path, onnx16, "tiny16.engine", fp16=True, tile=0, batch=1, max_size=(72, 96),
                         compute_capabilities=("8.6",))
    assert side.fp16_source == "graph" and side.profile.max == (1, 1, 72, 96) and side.targets == ("8.6",)
    with pytest.raises(DrcnError, match="pass --fp16"):
        build(tmp_path, onnx16, "x.engine")
    assert not (tmp_path / "x.engine").exists()


def test_foreign_corrupt_and_broken_onnx_are_refused_with_nothing_written(tmp_path, tiny_model_files):
    import onnx
    from onnx import TensorProto, helper

    foreign = tmp_path / "foreign.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), foreign)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    broken = tmp_path / "broken.onnx"   # drcn metadata intact, graph wired to a tensor that does not exist
    model = onnx.load(str(tiny_model_files[1]))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.input[1] = "no_such_weight"
    onnx.save(model, broken)
    for source, words in ((foreign, "no drcn metadata"), (corrupt, "not an ONNX model"),
                          (broken, "TensorRT's ONNX parser failed")):
        result = subprocess.run([sys.executable, "-m", "drcn.runtime.tensorrt.cli", "build", "--onnx", str(source),
                                 "--flavour", "rtx"], capture_output=True, text=True, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and words in lines[0], result.stderr
        assert not source.with_suffix(".engine").exists() and not source.with_suffix(".engine.json").exists()


def test_cli_build_info_and_run_without_gpu(tmp_path, tiny_model_files, image_folder):
    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    result = subprocess.run([sys.executable, "-m", "drcn.runtime.tensorrt.cli", "build", "--fp16", "--tile", "32",
                             "--calib", str(image_folder)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "fp16 safety" in result.stdout and "wrote model.engine" in result.stdout
    info = subprocess.run([sys.executable, "-m", "drcn.runtime.tensorrt.cli", "info", "model.engine"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert json.loads(info.stdout)["precision"] == "fp16"
    (tmp_path / "frames").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "frames" / "a.png"), np.full((20, 30, 3), 128, np.uint8))
    run = subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", "--engine", "model.engine", "frames"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    from drcn.runtime.tensorrt.cuda import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present: the engine may run")
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and "GPU" in lines[0], run.stderr
    assert not (tmp_path / "frames_x2").exists() or not list((tmp_path / "frames_x2").iterdir())


def test_converted_and_exported_fp16_graphs_agree_with_the_fp32_reference(tmp_path, tiny_model_files,
                                                                           image_folder):
    """Both FP16 graphs, run by ONNX Runtime on calibration images, stay within the export's FP16 tolerance of
    the FP32 PyTorch model."""
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    from drcn.calibration import calibration_pairs
    from drcn.export.exporter import TOLERANCE, export_model
    from drcn.onnx_meta import read_onnx_info
    from drcn.runtime.tensorrt.fp16 import convert_to_fp16
    from drcn.weights import load_model

    weights, onnx32 = tiny_model_files
    exported = tmp_path / "exported16.onnx"
    export_model(exported, weights=str(weights), fp16=True, calib=[str(image_folder)])
    converted = convert_to_fp16(onnx32, read_onnx_info(onnx32), [str(image_folder)]).model_bytes
    model = load_model(weights)
    sessions = {name: ort.InferenceSession(src, providers=["CPUExecutionProvider"])
                for name, src in (("converted", converted), ("exported", str(exported)))}
    worst = {name: 0.0 for name in sessions}
    for _, up, _ in calibration_pairs([str(image_folder)], (2.0, 3.0)):
        x = (up.astype(np.float32) / 255.0)[None, None]
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).numpy()
        for name, session in sessions.items():
            worst[name] = max(worst[name], float(np.abs(session.run(None, {"input": x})[0] - reference).max()))
    assert all(0 < w <= TOLERANCE["fp16"] for w in worst.values()), worst


def test_engine_cache_reuses_and_rebuilds_saying_why(tmp_path, tiny_model_files, monkeypatch):
    import onnx

    from drcn.runtime.tensorrt.cache import cached_engine

    monkeypatch.setenv("DRCN_CACHE", str(tmp_path / "cache"))
    onnx_path = tmp_path / "m.onnx"
    shutil.copy(tiny_model_files[1], onnx_path)
    messages = []
    first = cached_engine(onnx_path, "fp32", 32, 2, flavour="rtx", log=messages.append)
    assert first.is_file() and first.parent == tmp_path / "cache" / "engines"
    mtime = first.stat().st_mtime_ns
    assert cached_engine(onnx_path, "fp32", 32, 2, flavour="rtx", log=messages.append) == first
    assert first.stat().st_mtime_ns == mtime and "using the cached engine" in messages[-1]
    other = cached_engine(onnx_path, "fp32", 48, 2, flavour="rtx", log=messages.append)
    assert other != first and any("tile 32 -> 48" in m for m in messages)
    model = onnx.load(str(onnx_path))
    model.doc_string += " (edited)"
    onnx.save(model, str(onnx_path))
    rebuilt = cached_engine(onnx_path, "fp32", 48, 2, flavour="rtx", log=messages.append)
    assert rebuilt != other and any("onnx_sha256" in m for m in messages)
    assert read_sidecar(rebuilt).onnx_sha256 != read_sidecar(other).onnx_sha256


def _trt(*args, cwd, file_size_limit: int | None = None):
    """drcn-trt in a subprocess; ``file_size_limit``: RLIMIT_FSIZE set in the child before drcn-trt starts (by the
    child's own Python: a preexec_fn would run Python between fork and exec, which deadlocks when this process has
    threads, as it does after the in-process tests)."""
    start = ["-m", "drcn.runtime.tensorrt.cli"]
    if file_size_limit is not None:
        start = ["-c", "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, "
                       f"({file_size_limit}, {file_size_limit})); sys.argv = ['drcn-trt', *sys.argv[1:]]; "
                       "runpy.run_module('drcn.runtime.tensorrt.cli', run_name='__main__')"]
    return subprocess.run([sys.executable, *start, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_full_disk_over_an_existing_engine_keeps_the_old_pair(tmp_path, tiny_model_files):
    """A build that cannot write (file size limit, as a full disk) says so in one line and leaves the old engine and
    sidecar exactly as they were, still accepted by drcn-trt info; nothing else is left in the folder."""

    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    assert _trt("build", "--tile", "32", "--flavour", "rtx", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    engine_size = (tmp_path / "model.engine").stat().st_size

    # smaller than the engine, larger than a sidecar: the engine write fails, the sidecar's would not
    result = _trt("build", "--tile", "48", "--flavour", "rtx", cwd=tmp_path, file_size_limit=engine_size // 2)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "disk is full" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert _trt("info", "model.engine", cwd=tmp_path).returncode == 0


def test_engine_path_that_is_a_folder_writes_nothing(tmp_path, tiny_model_files):
    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    (tmp_path / "m.engine").mkdir()
    result = _trt("build", "--engine", "m.engine", "--flavour", "rtx", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--engine m.engine: is a folder" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "model.onnx"]
    assert not list((tmp_path / "m.engine").iterdir())


def test_info_refuses_an_engine_cut_short(tmp_path, tiny_model_files):
    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    assert _trt("build", "--tile", "32", "--flavour", "rtx", cwd=tmp_path).returncode == 0
    ok = _trt("info", "model.engine", cwd=tmp_path)
    assert ok.returncode == 0 and "checksum matches" in ok.stderr
    engine = tmp_path / "model.engine"
    engine.write_bytes(engine.read_bytes()[: engine.stat().st_size // 2])
    cut = _trt("info", "model.engine", cwd=tmp_path)
    lines = cut.stderr.strip().splitlines()
    assert cut.returncode != 0 and len(lines) == 1 and "does not match its sidecar" in lines[0], cut.stderr
    assert "drcn-trt build --onnx model.onnx" in lines[0]


def test_a_killed_build_leaves_temporaries_that_the_next_build_sweeps(tmp_path, tiny_model_files):
    """What a killed build left (``.model.engine.<host>-<dead pid>.*.tmp.engine``) goes with the next build."""
    from drcn import atomic

    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".model.engine.{atomic._host()}-{dead.pid}.abcdefgh.tmp.engine",
             tmp_path / f".model.engine.json.{atomic._host()}-{dead.pid}.abcdefgh.tmp.json"]
    for path in stale:
        path.write_bytes(b"half")
    assert _trt("build", "--tile", "32", "--flavour", "rtx", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.engine.json", "model.onnx"]
