"""The machine and library versions a measurement ran on, recorded with every benchmark result."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform

from drcn import __version__
from drcn.cpu import cpu_name, has_native_bf16

PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt", "opencv-python-headless",
            "onnx")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    """The first CUDA GPU's name via PyTorch, only if PyTorch is already imported (never imports it)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
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
    """Thread settings that change CPU timings: environment caps and, if loaded, PyTorch's intra-op pool."""
    import sys

    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
               if k in os.environ}
    torch = sys.modules.get("torch")
    if torch is not None:
        threads["torch_intra_op"] = torch.get_num_threads()
    return threads
