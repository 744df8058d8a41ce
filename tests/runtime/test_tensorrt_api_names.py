"""Every TensorRT name the code uses exists in the TensorRT versions and flavours it targets.

Standard TensorRT cannot be installed here, but the strings of its Python bindings' extension list every name of
the API: the bindings wheels (~1-2 MB) come from PyPI; the test skips where pip cannot reach it. TensorRT for RTX
is installed (dev extra): its names are checked on the real module.
"""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
# Names used on every version, and the one used only on TensorRT 10's weakly typed path.
COMMON = ["Logger", "WARNING", "VERBOSE", "Builder", "create_network", "NetworkDefinitionCreationFlag",
          "STRONGLY_TYPED", "OnnxParser", "parse", "num_errors", "get_error", "create_builder_config",
          "set_memory_pool_limit", "MemoryPoolType", "WORKSPACE", "create_optimization_profile", "set_shape",
          "add_optimization_profile", "create_timing_cache", "set_timing_cache", "get_timing_cache", "serialize",
          "build_serialized_network", "Runtime", "deserialize_cuda_engine", "create_execution_context",
          "num_io_tensors", "get_tensor_name", "get_tensor_mode", "TensorIOMode", "INPUT", "OUTPUT",
          "set_tensor_address", "set_input_shape", "execute_async_v3", "get_input", "BuilderFlag"]
TRT10_ONLY = ["FP16"]
# TensorRT-RTX only: compute-capability targets, the engine validity check, the JIT runtime cache.
RTX_ONLY = ["ComputeCapability", "num_compute_capabilities", "set_compute_capability", "EngineValidity", "INVALID",
            "get_engine_validity", "create_runtime_config", "create_runtime_cache", "set_runtime_cache", "deserialize"]
WHEELS = {"10": "tensorrt-cu12-bindings==10.16.1.11", "11": "tensorrt-cu13-bindings==11.4.0.106"}


def _has(blob: bytes, name: str) -> bool:
    # NUL-terminated, possibly as the tail of a longer string: linkers merge "INPUT" into "CONDITIONAL_INPUT".
    return name.encode() + b"\x00" in blob


def test_the_list_matches_the_code():
    source = "\n".join(p.read_text() for p in RUNTIME.rglob("*.py"))
    listed = COMMON + TRT10_ONLY + RTX_ONLY
    for name in listed:
        assert re.search(rf"\b{name}\b", source), f"{name} is listed but not used: update the list"
    used = set(re.findall(r"\btrt\.([A-Za-z][A-Za-z_]*)", source))  # module dunders such as __version__ aside
    assert used <= set(listed), f"unlisted TensorRT names: {used - set(listed)}"


def test_names_exist_in_tensorrt_rtx():
    trt = pytest.importorskip("tensorrt_rtx")
    owners = [trt, trt.Logger, trt.Builder, trt.IBuilderConfig, trt.INetworkDefinition, trt.OnnxParser,
              trt.IOptimizationProfile, trt.Runtime, trt.ICudaEngine, trt.IExecutionContext, trt.IRuntimeConfig,
              trt.IRuntimeCache, trt.NetworkDefinitionCreationFlag, trt.MemoryPoolType, trt.TensorIOMode,
              trt.EngineValidity, trt.IHostMemory]
    missing = [n for n in COMMON + RTX_ONLY
               if n not in ("create_timing_cache", "set_timing_cache", "get_timing_cache")  # used on standard only
               and not any(hasattr(owner, n) for owner in owners)]
    assert not missing, f"TensorRT-RTX lacks {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("major", ["10", "11"])
def test_names_exist_in_the_bindings(major, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                             "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", str(tmp_path),
                             WHEELS[major]], capture_output=True, text=True, timeout=180)
    wheels = list(tmp_path.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        pytest.skip(f"cannot download {WHEELS[major]} here")
    with zipfile.ZipFile(wheels[0]) as wheel:
        blob = b"".join(wheel.read(n) for n in wheel.namelist() if n.endswith(".so"))
    missing = [n for n in COMMON if not _has(blob, n)]
    assert not missing, f"TensorRT {major} lacks {missing}"
    if major == "10":
        assert _has(blob, "FP16")
    else:
        assert not _has(blob, "FP16")  # removed in 11: the code must (and does) only use it on TensorRT 10
