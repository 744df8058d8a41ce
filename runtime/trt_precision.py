"""How TensorRT is told the precision, by version (plain Python, tested without TensorRT).

TensorRT 10 takes the FP32 ONNX graph and a builder flag: ``BuilderFlag.FP16`` lets it choose FP16 kernels.
TensorRT 11 removed that flag and weak typing: the network is strongly typed, so the graph's own types decide,
and an FP16 engine is built from the FP16 graph that ``drcn-export --fp16`` writes.
"""

from __future__ import annotations

import dataclasses

from drcn.errors import DrcnError


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    strongly_typed: bool      # create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    fp16_flag: bool           # set BuilderFlag.FP16 (TensorRT 10 only)
    precision: str            # what the engine will compute in: fp32 | fp16


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise DrcnError(f"cannot read the TensorRT version '{version}'") from None


def plan_precision(tensorrt_version: str, want_fp16: bool, graph_precision: str, onnx_file: str) -> PrecisionPlan:
    major = major_version(tensorrt_version)
    if major < 10:
        raise DrcnError(f"TensorRT {tensorrt_version} is too old: drcn needs TensorRT 10 or newer "
                        "(pip install 'tensorrt>=10')")
    if major >= 11:
        if want_fp16 and graph_precision != "fp16":
            raise DrcnError(f"TensorRT {tensorrt_version} builds FP16 engines from an FP16 graph (strongly typed) "
                            f"and {onnx_file} is {graph_precision}: export one with drcn-export --onnx "
                            "model_fp16.onnx --fp16, then drcn-trt build --fp16 --onnx model_fp16.onnx")
        if not want_fp16 and graph_precision == "fp16":
            raise DrcnError(f"{onnx_file} is an FP16 graph: pass --fp16 to build it (or build the fp32 graph)")
        return PrecisionPlan(True, False, graph_precision)
    if graph_precision == "fp16" and not want_fp16:
        raise DrcnError(f"{onnx_file} is an FP16 graph: pass --fp16 to build it (or build the fp32 graph)")
    return PrecisionPlan(False, want_fp16, "fp16" if want_fp16 else "fp32")
