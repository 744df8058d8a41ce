"""The engine validity logic, tested without TensorRT."""

import pytest

from drcn import DrcnError
from drcn.runtime.tensorrt.sidecar import (EngineSidecar, GpuInfo, Profile, check_engine, mismatches, plan_profile,
                                         read_sidecar, write_sidecar)
from drcn.runtime.tensorrt.flavour import FLAVOURS, choose_flavour, parse_targets, plan_precision

H200 = GpuInfo("NVIDIA H200", "9.0")


def sidecar(**changes):
    base = dict(engine_sha256="e" * 64, onnx_file="model.onnx", onnx_sha256="o" * 64, precision="fp16",
                profile=plan_profile(256, 4, 13, 1), tile=256, batch=4, halo=13, channels=1, scales=(2.0, 3.0, 4.0),
                tensorrt_version="10.16.1", gpu=H200, drcn_version="0.1.0")
    base.update(changes)
    return EngineSidecar(**base)


def test_profile_for_tiles_and_frames():
    p = plan_profile(256, 4, 13, 1)
    assert p.opt == p.max == (4, 1, 282, 282) and p.min == (1, 1, 1, 1)
    assert p.accepts((3, 1, 282, 282)) and p.accepts((1, 1, 100, 50))
    assert not p.accepts((5, 1, 282, 282)) and not p.accepts((1, 1, 283, 10)) and not p.accepts((1, 282, 282))
    assert plan_profile(0, 1, 13, 1, (1080, 1920)).max == (1, 1, 1080, 1920)
    with pytest.raises(DrcnError, match="--max-size"):
        plan_profile(0, 1, 13, 1)


def test_round_trip(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    written = sidecar()
    assert write_sidecar(engine, written).name == "model.engine.json"
    assert read_sidecar(engine) == written


def test_every_mismatch_is_named():
    current = dict(engine_sha256="e" * 64, tensorrt_version="10.16.1", gpu=H200, onnx_sha256="o" * 64)
    assert mismatches(sidecar(), **current) == []
    assert mismatches(sidecar(), **{**current, "onnx_sha256": None}) == []   # ONNX not beside: fine
    cases = {"engine_sha256": "f" * 64, "tensorrt_version": "11.4.0", "gpu": GpuInfo("NVIDIA L4", "8.9"),
             "onnx_sha256": "p" * 64}
    words = {"engine_sha256": "engine file changed", "tensorrt_version": "TensorRT 11.4.0",
             "gpu": "NVIDIA L4", "onnx_sha256": "model.onnx changed"}
    for key, value in cases.items():
        problems = mismatches(sidecar(), **{**current, key: value})
        assert len(problems) == 1 and words[key] in problems[0]
    with pytest.raises(DrcnError, match="Rebuild it: drcn-trt build --onnx model.onnx --fp16 --flavour standard --tile 256"):
        check_engine("model.engine", sidecar(), **{**current, "gpu": GpuInfo("NVIDIA H100", "9.0")})


def test_missing_or_bad_sidecar(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"e")
    with pytest.raises(DrcnError, match="no sidecar"):
        read_sidecar(engine)
    (tmp_path / "x.engine.json").write_text('{"format": 99}')
    with pytest.raises(DrcnError, match="not a valid drcn engine sidecar"):
        read_sidecar(engine)


def test_precision_path_by_flavour_and_version():
    std, rtx = FLAVOURS["standard"], FLAVOURS["rtx"]
    ten = plan_precision(std, "10.16.1", True, "fp32", "m.onnx")
    assert (ten.strongly_typed, ten.fp16_flag, ten.convert_fp16, ten.precision) == (False, True, False, "fp16")
    assert plan_precision(std, "10.3.0", False, "fp32", "m.onnx").precision == "fp32"
    eleven = plan_precision(std, "11.4.0.106", True, "fp16", "m16.onnx")
    assert (eleven.strongly_typed, eleven.fp16_flag, eleven.convert_fp16) == (True, False, False)
    # Strongly typed builders get an FP16 graph converted from the FP32 one instead of an error.
    for flavour, version in ((std, "11.4.0"), (rtx, "1.7.1.116")):
        plan = plan_precision(flavour, version, True, "fp32", "m.onnx")
        assert (plan.strongly_typed, plan.fp16_flag, plan.convert_fp16, plan.precision) == (True, False, True, "fp16")
        with pytest.raises(DrcnError, match="pass --fp16"):
            plan_precision(flavour, version, False, "fp16", "m16.onnx")
    with pytest.raises(DrcnError, match="too old"):
        plan_precision(std, "8.6.1", True, "fp32", "m.onnx")
    assert plan_precision(rtx, "1.2.0", False, "fp32", "m.onnx").strongly_typed  # RTX 1.x is not "too old"


def test_flavour_choice():
    assert choose_flavour("auto", ["rtx"], None).name == "rtx"
    assert choose_flavour("auto", ["standard"], "8.9").name == "standard"
    assert choose_flavour("auto", ["standard", "rtx"], "9.0").name == "standard"   # H100/H200: not an RTX target
    assert choose_flavour("auto", ["standard", "rtx"], "8.9").name == "rtx"
    assert choose_flavour("auto", ["standard", "rtx"], None).name == "rtx"         # builds without a GPU
    with pytest.raises(DrcnError, match="tensorrt-rtx"):
        choose_flavour("auto", [], None)
    with pytest.raises(DrcnError, match="--flavour standard.*pip install tensorrt"):
        choose_flavour("standard", ["rtx"], None)
    assert parse_targets("8.6, 8.9") == ("8.6", "8.9")
    with pytest.raises(DrcnError, match="choose from"):
        parse_targets("9.0")


def test_rtx_targets_and_flavour_mismatches():
    rtx = sidecar(flavour="rtx", tensorrt_version="1.7.1.116", gpu=None, targets=("8.6", "8.9"))
    current = dict(engine_sha256="e" * 64, tensorrt_version="1.7.1.116", flavour="rtx")
    assert mismatches(rtx, **current, gpu=GpuInfo("NVIDIA GeForce RTX 4090", "8.9")) == []
    assert mismatches(rtx, **current, gpu=None) == []
    (problem,) = mismatches(rtx, **current, gpu=H200)
    assert "compute capabilities 8.6, 8.9" in problem and "NVIDIA H200" in problem
    (problem,) = mismatches(rtx, **{**current, "flavour": "standard"}, gpu=None)
    assert "rtx" in problem and "standard" in problem
    (problem,) = mismatches(rtx, **{**current, "tensorrt_version": "1.8.0"}, gpu=None)
    assert "TensorRT-RTX 1.7.1.116" in problem
    assert rtx.rebuild_command() == ("drcn-trt build --onnx model.onnx --fp16 --flavour rtx --tile 256 --batch 4 "
                                     "--compute-capability 8.6,8.9")


def test_profile_dataclass_is_json_safe():
    assert Profile((1, 1, 1, 1), (2, 1, 8, 8), (2, 1, 8, 8)).accepts((2, 1, 8, 8))
