"""The two TensorRT flavours and every difference between them, in one place (plain Python, tested without
TensorRT).

- **standard** TensorRT (``tensorrt``, NVIDIA's index; 10.x and 11.x): builds on the GPU it will run on, for
  that GPU only; keeps a timing cache; TensorRT 10 takes the FP32 graph plus ``BuilderFlag.FP16``, TensorRT 11
  is strongly typed only, so an FP16 engine needs an FP16 graph. The choice for data-centre GPUs (Hopper: H100,
  H200, compute 9.0) and anything TensorRT-RTX does not target.
- **rtx**: TensorRT for RTX (``tensorrt_rtx``, on PyPI: ``pip install tensorrt-rtx``): strongly typed only;
  builds ahead of time on the CPU, no GPU needed, for a list of compute capabilities (default 8.0, 8.6, 8.9,
  12.0 and later; 7.5 on request); kernels are compiled just in time on the user's GPU and kept in a runtime
  cache; no timing cache (using one forces a GPU query); ``Runtime.get_engine_validity`` checks an engine's header
  before it is loaded. The choice for desktop RTX cards.
"""

from __future__ import annotations

import dataclasses

from drcn.errors import DrcnError, MissingDependencyError
from drcn.optional import installed, require


@dataclasses.dataclass(frozen=True)
class Flavour:
    name: str                     # standard | rtx
    label: str                    # how versions are named: "TensorRT 10.16.1", "TensorRT-RTX 1.7.1"
    module: str                   # the Python module
    install: str                  # how to get it
    builds_without_gpu: bool      # ahead-of-time build on a CPU-only machine
    always_strongly_typed: bool   # no weak typing, no FP16 builder flag, in any version
    timing_cache: bool            # keep a builder timing cache beside the engine
    runtime_cache: bool           # keep the JIT kernel cache beside the engine
    targets: bool                 # engines are built for a list of compute capabilities, not "this GPU"
    validity_check: bool          # Runtime.get_engine_validity before deserialising


FLAVOURS = {
    "standard": Flavour("standard", "TensorRT", "tensorrt", "pip install tensorrt (NVIDIA's package index; needs an NVIDIA "
                        "GPU and driver to build) and pip install cuda-bindings", builds_without_gpu=False,
                        always_strongly_typed=False, timing_cache=True, runtime_cache=False, targets=False,
                        validity_check=False),
    "rtx": Flavour("rtx", "TensorRT-RTX", "tensorrt_rtx", "pip install 'drcn[tensorrt-rtx]' (TensorRT for RTX, from PyPI)",
                   builds_without_gpu=True, always_strongly_typed=True, timing_cache=False, runtime_cache=True,
                   targets=True, validity_check=True),
}
# TensorRT-RTX's compute capabilities, by the name of its ComputeCapability enum member.
RTX_COMPUTE_CAPABILITIES = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120",
                            "12.1": "SM121"}
# What an engine built without explicit targets runs on (TensorRT-RTX docs: 8.0, 8.6, 8.9, 12.0 and later).
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0", "12.1")


def installed_flavours() -> list[str]:
    return [name for name, f in FLAVOURS.items() if installed(f.module)]


def rtx_runs_on(compute_capability: str) -> bool:
    """Whether TensorRT-RTX targets this GPU at all (it does not target Hopper, 9.0, nor anything before 7.5)."""
    return compute_capability in RTX_COMPUTE_CAPABILITIES or _major(compute_capability) >= 12


def choose_flavour(requested: str, available: list[str], gpu_compute_capability: str | None) -> Flavour:
    """``requested`` (auto, standard, rtx) among the ``available`` installed flavours.

    auto: the only one installed; with both, the one that targets this GPU (standard on a GPU TensorRT-RTX does
    not target, such as an H200), and RTX where there is no GPU (it builds without one).
    """
    if requested not in ("auto", *FLAVOURS):
        raise DrcnError(f"--flavour {requested}: choose auto, standard or rtx")
    if requested != "auto":
        flavour = FLAVOURS[requested]
        if requested not in available:
            raise MissingDependencyError(flavour.module, f"--flavour {requested}", flavour.install)
        return flavour
    if not available:
        raise MissingDependencyError("tensorrt", "TensorRT", f"{FLAVOURS['rtx'].install}; on data-centre GPUs: "
                                     f"{FLAVOURS['standard'].install}")
    if len(available) == 1:
        return FLAVOURS[available[0]]
    if gpu_compute_capability is not None and not rtx_runs_on(gpu_compute_capability):
        return FLAVOURS["standard"]
    return FLAVOURS["rtx"]


def import_flavour(flavour: Flavour):
    return require(flavour.module, f"TensorRT ({flavour.name} flavour)", flavour.install)


def make_logger(trt, verbose: bool = False):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)


def parse_targets(text: str) -> tuple[str, ...]:
    """'8.6,8.9' -> ('8.6', '8.9'), each a compute capability TensorRT-RTX can target."""
    values = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [v for v in values if v not in RTX_COMPUTE_CAPABILITIES]
    if not values or unknown:
        raise DrcnError(f"--compute-capability {text}: choose from {', '.join(RTX_COMPUTE_CAPABILITIES)}")
    return values


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    strongly_typed: bool      # create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    fp16_flag: bool           # set BuilderFlag.FP16 (standard TensorRT 10 only)
    convert_fp16: bool        # convert the FP32 graph to FP16 first (strongly typed builders)
    precision: str            # what the engine will compute in: fp32 | fp16


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise DrcnError(f"cannot read the version '{version}'") from None


def plan_precision(flavour: Flavour, version: str, want_fp16: bool, graph_precision: str,
                   onnx_file: str) -> PrecisionPlan:
    """How this flavour and version are told the precision. An FP16 graph is built as it is; an FP32 graph
    with --fp16 gets the FP16 builder flag on TensorRT 10 and is converted to FP16 on strongly typed builders."""
    if not flavour.always_strongly_typed and _major(version) < 10:
        raise DrcnError(f"TensorRT {version} is too old: drcn needs TensorRT 10 or newer (pip install 'tensorrt>=10')")
    if graph_precision == "fp16" and not want_fp16:
        raise DrcnError(f"{onnx_file} is an FP16 graph: pass --fp16 to build it (or build the fp32 graph)")
    strongly_typed = flavour.always_strongly_typed or _major(version) >= 11
    if graph_precision == "int8":
        # Explicit quantization: the QDQ nodes say what is int8; the rest runs as the graph's float types say.
        if want_fp16:
            raise DrcnError(f"{onnx_file} is an INT8 graph: build it without --fp16")
        return PrecisionPlan(strongly_typed, False, False, "int8")
    if not want_fp16:
        return PrecisionPlan(strongly_typed, False, False, "fp32")
    if graph_precision == "fp16":
        return PrecisionPlan(strongly_typed, not strongly_typed, False, "fp16")
    return PrecisionPlan(strongly_typed, not strongly_typed, strongly_typed, "fp16")
