"""The engine validity logic, tested without TensorRT."""

import pytest

from drcn import DrcnError
from drcn.runtime.engine_sidecar import (EngineSidecar, GpuInfo, Profile, check_engine, mismatches, plan_profile,
                                         read_sidecar, write_sidecar)
from drcn.runtime.trt_precision import plan_precision

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
    with pytest.raises(DrcnError, match="Rebuild it: drcn-trt build --onnx model.onnx --fp16 --tile 256"):
        check_engine("model.engine", sidecar(), **{**current, "gpu": GpuInfo("NVIDIA H100", "9.0")})


def test_missing_or_bad_sidecar(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"e")
    with pytest.raises(DrcnError, match="no sidecar"):
        read_sidecar(engine)
    (tmp_path / "x.engine.json").write_text('{"format": 99}')
    with pytest.raises(DrcnError, match="not a valid drcn engine sidecar"):
        read_sidecar(engine)


def test_precision_path_by_version():
    ten = plan_precision("10.16.1", True, "fp32", "m.onnx")
    assert (ten.strongly_typed, ten.fp16_flag, ten.precision) == (False, True, "fp16")
    assert plan_precision("10.3.0", False, "fp32", "m.onnx").precision == "fp32"
    eleven = plan_precision("11.4.0.106", True, "fp16", "m16.onnx")
    assert (eleven.strongly_typed, eleven.fp16_flag, eleven.precision) == (True, False, "fp16")
    with pytest.raises(DrcnError, match="drcn-export --onnx model_fp16.onnx --fp16"):
        plan_precision("11.4.0", True, "fp32", "m.onnx")
    with pytest.raises(DrcnError, match="pass --fp16"):
        plan_precision("11.4.0", False, "fp16", "m16.onnx")
    with pytest.raises(DrcnError, match="too old"):
        plan_precision("8.6.1", True, "fp32", "m.onnx")


def test_profile_dataclass_is_json_safe():
    assert Profile((1, 1, 1, 1), (2, 1, 8, 8), (2, 1, 8, 8)).accepts((2, 1, 8, 8))
