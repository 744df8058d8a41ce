"""The OpenVINO CPU backend: precision choice, parity with ONNX Runtime, auto-selection, model cache."""

import numpy as np
import pytest

from drcn import DrcnError
from drcn.runtime.backends.openvino_backend import cache_folder, choose_precision


def _verdicts(**changes_and_ms):
    from drcn.runtime.backends.precision_check import Verdict

    made = {"fp32": Verdict("fp32", {"x2": 0.0, "x3": 0.0}, 100.0)}
    for precision, (change, ms) in changes_and_ms.items():
        made[precision] = Verdict(precision, {"x2": change, "x3": change / 2}, ms)
    return lambda candidates: {p: v for p, v in made.items() if p == "fp32" or p in candidates}


def test_auto_takes_the_fastest_precision_the_check_passed_on_this_cpu():
    fast = _verdicts(int8=(-0.02, 30.0), bf16=(-0.01, 60.0))
    precision, why = choose_precision("auto", ["FP32", "BF16", "INT8"], True, fast)
    assert precision == "int8" and "checked on this CPU: -0.020 dB" in why and "3.33x" in why
    # Offered by OpenVINO, not by a table of instruction sets: INT8 on a CPU that reports INT8 without bf16 (AVX2).
    assert choose_precision("auto", ["FP32", "INT8"], True, fast)[0] == "int8"
    # A precision past the limit on this CPU's kernels is refused, with the measured loss in the line.
    precision, why = choose_precision("auto", ["FP32", "BF16", "INT8"], True, _verdicts(int8=(-0.07, 30.0),
                                                                                        bf16=(-0.01, 60.0)))
    assert precision == "bf16" and "int8 refused: -0.070 dB" in why
    # Faster is measured, not assumed: a bf16 slower than fp32 is not taken.
    assert choose_precision("auto", ["FP32", "BF16"], False, _verdicts(bf16=(-0.01, 130.0)))[0] == "fp32"
    # Nothing offered besides fp32: no check at all.
    precision, why = choose_precision("auto", ["FP32"], True, lambda _: pytest.fail("checked for nothing"))
    assert precision == "fp32" and "nothing faster" in why
    assert choose_precision("fp32", ["FP32", "BF16"])[0] == "fp32"
    with pytest.raises(DrcnError, match="does not support bf16"):
        choose_precision("bf16", ["FP32"])
    with pytest.raises(DrcnError, match="auto, fp32, bf16, int8 or int8/f32"):
        choose_precision("fp16", ["FP32", "FP16"])


def test_cache_key_changes_with_what_affects_the_blob():
    keys = {cache_folder("a" * 64, "fp32", "latency", "2026.4"), cache_folder("b" * 64, "fp32", "latency", "2026.4"),
            cache_folder("a" * 64, "bf16", "latency", "2026.4"), cache_folder("a" * 64, "fp32", "throughput", "2026.4"),
            cache_folder("a" * 64, "fp32", "latency", "2026.5")}
    assert len(keys) == 5


ov = pytest.importorskip("openvino")


@pytest.mark.parametrize("capabilities, expected", [(["FP32", "INT8"], "fp32"), (["FP32", "BF16"], "bf16")])
def test_backend_offers_what_the_capability_query_says_and_checks_once(tiny_model_files, cache, monkeypatch,
                                                                       capabilities, expected):
    from drcn.runtime.backends import precision_check
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    real = ov.Core.get_property

    def fake(self, device, name):  # only the capability query is mocked
        return capabilities if name == "OPTIMIZATION_CAPABILITIES" else real(self, device, name)

    measured = []

    def measure(fp32_graph, int8_graph, candidates, scales=None):   # mocked evidence; test_int8 runs the real one
        measured.append(candidates)
        return _verdicts(bf16=(-0.01, 50.0))(candidates)

    monkeypatch.setattr(ov.Core, "get_property", fake)
    monkeypatch.setattr(precision_check, "measure", measure)
    said = []
    backend = OpenVINOBackend(str(tiny_model_files[1]), log=said.append)
    assert backend.precision == expected and f"{expected} (auto" in backend.description
    assert backend.config["INFERENCE_PRECISION_HINT"] == ("bf16" if expected == "bf16" else "f32")
    assert measured == ([["bf16"]] if expected == "bf16" else [])      # no INT8 graph: INT8 is not offered
    OpenVINOBackend(str(tiny_model_files[1]))                        # the verdict is cached: no second check
    assert len(measured) == (1 if expected == "bf16" else 0)
    if expected == "bf16":
        assert "checked on this CPU: -0.010 dB" in backend.description and any("once" in s for s in said)
        forced = OpenVINOBackend(str(tiny_model_files[1]), precision="bf16")
        assert "requested; checked on this CPU: -0.010 dB" in forced.description


def test_fp32_parity_with_onnxruntime_and_cache(tiny_model_files, cache):
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32")
    x = np.random.default_rng(0).random((3, 1, 33, 41)).astype(np.float32)
    np.testing.assert_allclose(backend.run(x), OnnxRuntimeBackend(str(tiny_model_files[1])).run(x), atol=1e-5)
    backend.run(x[:1])  # a second shape compiles once more
    backend.run(x[1:2])  # not a third time
    assert len(backend._shapes) == 2
    assert any((cache / "openvino").rglob("*.blob")) or any((cache / "openvino").rglob("*"))


def test_drcn_run_picks_openvino_and_matches_onnxruntime(tiny_model_files, tmp_path, cache, capsys):
    import importlib.util

    from drcn import matlab
    from drcn.images import read_image, write_image

    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs onnxruntime for the comparison")
    src = tmp_path / "frames"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(src / f"{i}.png", rng.integers(0, 256, (40, 52, 3), dtype=np.uint8))
    from conftest import run_cli as run_command

    onnx = str(tiny_model_files[1])
    # in child processes: OpenVINO's CPU threads in the test process made a later test's self-sent SIGINT crash
    ov_run = run_command("drcn.runtime.run_cli", "--tile", "16", str(src), "--onnx", onnx, "-o", str(tmp_path / "ov"))
    assert ov_run.returncode == 0 and "OpenVINO" in ov_run.stdout, ov_run.stderr
    assert "throughput mode" in ov_run.stdout or "latency mode" in ov_run.stdout
    ort_run = run_command("drcn.runtime.run_cli", "--tile", "16", str(src), "--onnx", onnx, "-o",
                          str(tmp_path / "ort"), "--backend", "onnxruntime")
    assert ort_run.returncode == 0, ort_run.stderr
    for i in range(2):
        y_ov = matlab.rgb2y(read_image(tmp_path / "ov" / f"{i}.png")).astype(int)
        y_ort = matlab.rgb2y(read_image(tmp_path / "ort" / f"{i}.png")).astype(int)
        assert np.mean(np.abs(y_ov - y_ort) <= 1) >= 0.999


def test_int8_needs_an_int8_graph():
    assert choose_precision("auto", ["FP32", "INT8"], False, _verdicts(int8=(-0.01, 10.0)))[0] == "fp32"
    assert choose_precision("int8", ["FP32"], int8_graph=True)[0] == "int8"
    with pytest.raises(DrcnError, match="no INT8 graph of this model"):
        choose_precision("int8", ["FP32", "INT8"], int8_graph=False)


_THROUGHPUT_PROBE = """
import sys, numpy as np
from drcn.runtime.backends.openvino_backend import OpenVINOBackend
x = np.random.default_rng(2).random((5, 1, 30, 30)).astype(np.float32)
latency = OpenVINOBackend(sys.argv[1], precision="fp32", mode="latency")
throughput = OpenVINOBackend(sys.argv[1], precision="fp32", mode="throughput", threads=2)
assert latency.in_flight == 1 and "latency mode" in latency.description, latency.description
if throughput.in_flight > 1:
    assert f"throughput mode, {throughput.in_flight} requests in flight" in throughput.description
np.testing.assert_array_equal(latency.run(x), throughput.run(x))
np.testing.assert_array_equal(latency.run(x[:1]), throughput.run(x[:1]))
# frames in flight: several threads call run() at once and share the requests
from concurrent.futures import ThreadPoolExecutor
batches = [x[i:i + 2] + i for i in range(4)]
with ThreadPoolExecutor(4) as pool:
    for got, batch in zip(pool.map(throughput.run, batches), batches):
        np.testing.assert_array_equal(got, latency.run(batch))
throughput.close()
print("in flight", throughput.in_flight)
"""


def test_throughput_mode_keeps_requests_in_flight_and_gives_the_same_pixels(tiny_model_files, cache):
    """In a child process: OpenVINO's throughput-mode threads in the test process made a later test's self-sent
    SIGINT crash pytest (drcn-run itself ends cleanly on Ctrl-C in this mode)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _THROUGHPUT_PROBE, str(tiny_model_files[1])], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("in flight")


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_compiled_shapes_are_bounded_and_an_evicted_shape_compiles_again(tiny_model_files, cache, mode):
    """Every new input shape is a static compile holding its own buffers; a long run over differently sized
    frames must not keep them all (an unbounded cache reached 23 GB and was killed)."""
    pytest.importorskip("openvino")
    from drcn.runtime.backends.openvino_backend import MAX_SHAPES, OpenVINOBackend
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32", mode=mode)
    reference = OnnxRuntimeBackend(str(tiny_model_files[1]))
    first = np.random.default_rng(0).random((2, 1, 20, 24), np.float32)
    want = reference.run(first)
    np.testing.assert_allclose(backend.run(first), want, atol=1e-5)
    for extra in range(MAX_SHAPES + 2):
        backend.run(np.zeros((2, 1, 21 + extra, 24), np.float32))
    assert len(backend._shapes) == MAX_SHAPES and (2, 1, 20, 24) not in backend._shapes
    np.testing.assert_allclose(backend.run(first), want, atol=1e-5)
    backend.close()


def test_an_offered_precision_the_plugin_cannot_compile_is_recorded_and_never_chosen(tiny_model_files, cache,
                                                                                       monkeypatch):
    from drcn.runtime.backends import precision_check

    real = precision_check._runner

    def runner(model, hint):
        if hint == "bf16":
            def fail(_):
                raise RuntimeError("Exception from src/inference: object is not initialized")
            return fail
        return real(model, hint)

    monkeypatch.setattr(precision_check, "_runner", runner)
    found = precision_check.verdicts(str(tiny_model_files[1]), None, ["bf16"])
    assert found["bf16"].error and not found["bf16"].ok and found["fp32"].ok
    precision, why = precision_check.choose(found)
    assert precision == "fp32" and "bf16 refused: OpenVINO cannot run it here" in why
    assert precision_check.cached(str(tiny_model_files[1]), None)["bf16"].error   # the failure is cached too


@pytest.mark.parametrize("isa,bf16", [("AVX2", False), ("avx512_core_vnni", False), ("AVX512_CORE_BF16", True),
                                      ("", True)])
def test_kernels_capped_below_bf16_offer_no_bf16(monkeypatch, isa, bf16):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes this CPU compute as an AVX2-only one, whose plugin reports no BF16; the plugin
    still reports it under the cap and then cannot compile bf16, so drcn does not offer it there."""
    from drcn.runtime.backends.precision_check import cpu_capabilities

    real = ov.Core.get_property
    monkeypatch.setattr(ov.Core, "get_property", lambda self, device, name: ["FP32", "BF16", "INT8"]
                        if name == "OPTIMIZATION_CAPABILITIES" else real(self, device, name))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert ("BF16" in cpu_capabilities()) == bf16 and "INT8" in cpu_capabilities()


def test_a_model_the_plugin_cannot_compile_is_a_one_line_error(tiny_model_files, cache):
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32")
    with pytest.raises(DrcnError) as caught:
        backend._compile(backend.model, {**backend.config, "INFERENCE_PRECISION_HINT": "no-such-precision"})
    message = str(caught.value)
    assert "OpenVINO cannot compile the fp32 model" in message and "\n" not in message


def test_a_precision_within_the_psnr_limit_is_refused_for_its_worst_pixels():
    """Issue 33: an average hides the values a clipped range moves by tens of levels; the check bounds them."""
    from drcn.deviation import Deviation
    from drcn.runtime.backends.precision_check import INT8_F32, Verdict, choose, int8_float_hint, offered

    flat = np.full((100, 100), 128, np.uint8)
    spotted = flat.copy()
    spotted.flat[:3] = 150                                       # 3 of 10,000 values 22 levels off
    exact, spots = Deviation().add(flat, flat), Deviation().add(flat, spotted)
    assert spots.max == 22 and spots.share_over(4) == 3e-4 and "0.03% of values more than 4 levels off" in spots.breach()
    one = flat.copy()
    one.flat[0] = 141                                            # one value 13 levels off: 0.01% share, too far
    assert Deviation().add(flat, one).breach() == "a value 13 levels off (bound 12)"
    assert Deviation().add(flat, flat + 4).breach() == ""        # 4 levels everywhere is within the bound

    def verdict(name, change, ms, pixels):
        return Verdict(name, {"x2": change, "x3": change}, ms, pixels={"x2": exact.counts.tolist(),
                                                                        "x3": pixels.counts.tolist()})

    found = {"fp32": verdict("fp32", 0.0, 100.0, exact), "int8": verdict("int8", -0.01, 30.0, spots),
             INT8_F32: verdict(INT8_F32, -0.01, 50.0, exact), "bf16": verdict("bf16", -0.005, 60.0, spots)}
    precision, why = choose(found)
    assert precision == INT8_F32 and "per pixel at most 0 levels" in why
    assert "int8 refused: 0.03% of values more than 4 levels off at x3 (check bound 0.005%, half the bound)" in why
    assert "bf16 refused: 0.03% of values more than 4 levels off at x3" in why
    found[INT8_F32] = verdict(INT8_F32, -0.01, 50.0, spots)
    assert choose(found)[0] == "fp32"
    # judged at the scale a run serves: x2 is exact for all three, so the fastest is taken there
    assert choose(found, 2.0)[0] == "int8" and choose(found, 3.0)[0] == "fp32" and choose(found, 2.5)[0] == "fp32"
    # the check images keep half the bound as a margin: 7 levels pass the bound, not the check
    seven = flat.copy()
    seven.flat[0] = 135
    assert Deviation().add(flat, seven).breach() == "" and Deviation().add(flat, seven).breach(0.5)
    assert offered(["FP32", "INT8", "BF16"], True) == ["int8", INT8_F32, "bf16"]
    assert offered(["FP32", "INT8"], True) == ["int8"]          # no bf16: the float parts are f32 anyway
    assert int8_float_hint("int8", ["INT8", "BF16"]) == "bf16" and int8_float_hint(INT8_F32, ["BF16"]) == "f32"
    assert int8_float_hint("int8", ["INT8"]) == "f32"


def test_a_cached_verdict_without_the_per_pixel_figures_is_measured_again(tiny_model_files, cache, monkeypatch):
    """Verdicts cached before the per-pixel bound (check version 1, no "pixels") are never trusted as passing."""
    import json

    from drcn import cache as cache_module
    from drcn.runtime.backends import precision_check

    graph = str(tiny_model_files[1])
    path = precision_check._verdict_path(graph, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = {p: {"precision": p, "change_db": {"x2": 0.0}, "ms_per_window": ms, "error": ""}
           for p, ms in (("fp32", 100.0), ("bf16", 50.0))}
    path.write_text(json.dumps(old))
    cache_module.seal(path)
    assert precision_check.cached(graph, None) is None
    measured = []

    def measure(fp32_graph, int8_graph, candidates, scales=None):
        measured.append(candidates)
        return _verdicts(bf16=(-0.01, 50.0))(candidates)

    monkeypatch.setattr(precision_check, "measure", measure)
    precision_check.verdicts(graph, None, ["bf16"])
    assert measured == [["bf16"]]


def test_the_precision_is_chosen_for_the_scale_the_upscaler_serves(tiny_model_files, cache, monkeypatch):
    """A verdict that passes at x2 and not at x3 gives bf16 to a x2 Upscaler and fp32 to a x3 one (the scale flows
    from drcn.Upscaler to the backend's choice)."""
    from drcn.deviation import Deviation
    from drcn.runtime.api import Upscaler
    from drcn.runtime.backends import precision_check

    flat = np.full((100, 100), 128, np.uint8)
    exact, far = Deviation().add(flat, flat), Deviation().add(flat, flat + 20)

    def measure(fp32_graph, int8_graph, candidates, scales=None):
        made = {"fp32": precision_check.Verdict("fp32", {"x2": 0.0, "x3": 0.0}, 100.0,
                                                pixels={"x2": exact.counts.tolist(), "x3": exact.counts.tolist()})}
        for name in candidates:
            made[name] = precision_check.Verdict(name, {"x2": -0.01, "x3": -0.01}, 40.0,
                                                 pixels={"x2": exact.counts.tolist(), "x3": far.counts.tolist()})
        return made

    monkeypatch.setattr(precision_check, "measure", measure)
    monkeypatch.setattr(precision_check, "cpu_capabilities", lambda core=None: ["FP32", "BF16"])
    # (nothing is compiled: bf16 is claimed by the mock, and this CPU may lack it)
    with Upscaler(tiny_model_files[1], scale=2, backend="openvino", tile=0) as x2:
        assert "bf16 (auto: checked on this CPU: -0.010 dB at x2" in x2.description
    with Upscaler(tiny_model_files[1], scale=3, backend="openvino", tile=0) as x3:
        assert "fp32 (auto" in x3.description and "bf16 refused: 100% of values more than 4 levels off at x3" \
            in x3.description
