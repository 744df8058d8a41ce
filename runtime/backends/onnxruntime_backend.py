"""ONNX Runtime backend: the best available execution provider (TensorRT EP, CUDA EP, CPU), said out loud."""

from __future__ import annotations

import numpy as np

from drcn.errors import DrcnError, backend_reason
from drcn.optional import require
from drcn.onnx_meta import read_onnx_info
from drcn.runtime.backends.table import ModelSpec

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(available: list[str], requested: str = "auto") -> list[str]:
    """Providers to ask for, best first. ``requested``: auto, or one of cpu, cuda, tensorrt."""
    if requested == "auto":
        chosen = [p for p in PROVIDER_ORDER if p in available]
    else:
        wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "tensorrt": "TensorrtExecutionProvider"}.get(requested)
        if wanted is None:
            raise DrcnError(f"--provider {requested}: choose auto, cpu, cuda or tensorrt")
        if wanted not in available:
            raise DrcnError(f"--provider {requested}: this ONNX Runtime has only {', '.join(available)} "
                            "(GPU providers need: pip install 'drcn[onnx-gpu]')")
        chosen = [wanted, "CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [wanted]
    return chosen or ["CPUExecutionProvider"]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model_path: str, provider: str = "auto", threads: int | None = None, **_):
        ort = require("onnxruntime", "the ONNX Runtime backend", "pip install 'drcn[onnx]'")
        info = read_onnx_info(model_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers = choose_providers(ort.get_available_providers(), provider)
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # ORT reports bad graphs and provider failures with many exception types
            raise DrcnError(f"{model_path}: ONNX Runtime cannot load it: {backend_reason(exc)}") from None
        used = self.session.get_providers()[0]
        self.runs_on_gpu = used != "CPUExecutionProvider"
        self.input_name = self.session.get_inputs()[0].name
        self.spec = ModelSpec.of_onnx(info, str(model_path))
        self.description = (f"ONNX Runtime {ort.__version__} on {used.replace('ExecutionProvider', '')}, "
                            f"{info.precision} graph ({model_path})")

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def close(self) -> None:
        self.session = None
