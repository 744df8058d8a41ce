"""Which model file and which backend ``drcn-run`` uses, and why (printed to the user).

Explicit files win (``--engine`` → TensorRT, ``--onnx`` → an ONNX backend, ``--weights`` → PyTorch); otherwise
``model.engine`` / ``model.onnx`` in the working directory; otherwise the shipped model. ``auto`` runs an ONNX
file on TensorRT where TensorRT and a GPU are present (engine built and cached on first use), else on OpenVINO
where it is installed and ONNX Runtime has no GPU provider (OpenVINO is the faster CPU path), else on ONNX
Runtime.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drcn.errors import DrcnError
from drcn.runtime.tensorrt.cuda import gpu_available
from drcn.runtime.backends.table import BACKENDS, backend_entry
from drcn.weights import default_weights_path


@dataclasses.dataclass(frozen=True)
class Choice:
    backend: str
    model: Path
    reason: str


def shipped_onnx_path() -> Path:
    return default_weights_path().with_suffix(".onnx")


def auto_onnx_backend() -> str:
    """TensorRT where it is installed and a GPU is usable (the engine is built and cached on first use); else
    OpenVINO where installed and ONNX Runtime has no GPU provider (the faster CPU path); else ONNX Runtime."""
    if BACKENDS["tensorrt"].available() and gpu_available():
        return "tensorrt"
    if BACKENDS["openvino"].available() and not _onnxruntime_has_gpu():
        return "openvino"
    return "onnxruntime"


def _onnxruntime_has_gpu() -> bool:
    if not BACKENDS["onnxruntime"].available():
        return False
    import onnxruntime

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()))


def choose(engine: str | None = None, onnx: str | None = None, weights: str | None = None,
           backend: str = "auto", cwd: Path | None = None) -> Choice:
    given = [(kind, value) for kind, value in (("engine", engine), ("onnx", onnx), ("weights", weights)) if value]
    if len(given) > 1:
        raise DrcnError(f"give one model: --{given[0][0]} or --{given[1][0]}, not both")
    if backend != "auto":
        backend_entry(backend)  # an unknown name fails here, before any file is looked at
    if given:
        kind, value = given[0]
        path = Path(value)
        if not path.is_file():
            raise DrcnError(f"--{kind} {path}: no such file")
        if backend == "auto":
            backend = {"engine": "tensorrt", "onnx": auto_onnx_backend(), "weights": "torch"}[kind]
        elif kind not in BACKENDS[backend].model_kinds:
            raise DrcnError(f"--backend {backend} runs a {BACKENDS[backend].model_kind} file, not --{kind} {path}")
        return Choice(backend, path, f"--{kind}")

    cwd = cwd or Path.cwd()
    local_engine, local_onnx = cwd / "model.engine", cwd / "model.onnx"
    if backend in ("auto", "tensorrt") and local_engine.is_file() and (backend == "tensorrt" or
                                                                        BACKENDS["tensorrt"].available()):
        return Choice("tensorrt", local_engine, "model.engine in the working directory")
    if (backend == "auto" or "onnx" in BACKENDS[backend].model_kinds) and local_onnx.is_file():
        return Choice(auto_onnx_backend() if backend == "auto" else backend, local_onnx,
                      "model.onnx in the working directory")
    if backend == "torch":
        return Choice("torch", default_weights_path(), "the shipped model")
    shipped = shipped_onnx_path()
    if not shipped.is_file():
        raise DrcnError(f"no model given and the shipped model {shipped} is missing: pass --onnx or --weights")
    return Choice(auto_onnx_backend() if backend == "auto" else backend, shipped, "the shipped model")
