"""The machine and library versions a measurement ran on, recorded with every benchmark result."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform

from drcn import __version__
from drcn.cpu import cpu_name, has_native_bf16
from drcn.errors import DrcnError

PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt", "tensorrt_rtx",
            "opencv-python-headless", "onnx", "av", "ray")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    """The first CUDA GPU's name through the CUDA bindings (as the TensorRT backend sees it); None without a
    usable GPU or bindings. The same answer whatever was imported before."""
    from drcn.runtime.tensorrt.cuda import query_gpu

    try:
        return query_gpu().name
    except DrcnError:
        return None


def environment() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_native_bf16": has_native_bf16(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "drcn": __version__,
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "threads": _threads(),
    }


def _threads() -> dict:
    """Thread settings that change CPU timings: the environment's caps and the cores this process may use."""
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
               if k in os.environ}
    if hasattr(os, "sched_getaffinity"):
        threads["usable_cores"] = len(os.sched_getaffinity(0))
    return threads
