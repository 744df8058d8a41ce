"""Backends at a given precision (and depth) for benchmarking, exporting or building the files they need.

ONNX variants are exported from the weights into a cache folder keyed by the weights' checksum, precision and
depth, so a second benchmark run reuses them; TensorRT engines are built there too (GPU machines only).
"""

from __future__ import annotations

from pathlib import Path

from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.errors import DrcnError
from drcn.runtime.backend import BACKENDS, Backend, create_backend
from drcn.weights import resolve_weights


def exported_onnx(weights: str | None, precision: str, depth: int | None = None, calib=None,
                  fold_output: bool = True) -> Path:
    """The ONNX graph of ``weights`` at ``precision`` (and ``--depth``, ``--no-fold``), exported once and cached."""
    from drcn.export.exporter import export_model

    source = resolve_weights(weights)
    key = f"{file_sha256(source)[:16]}_{precision}" + (f"_d{depth}" if depth else "") + ("" if fold_output else "_nofold")
    path = cache_dir("bench") / f"{key}.onnx"
    if not path.is_file():
        export_model(path, weights=str(source), fp16=precision == "fp16", depth=depth, calib=calib,
                     fold_output=fold_output)
    return path


def built_engine(onnx_path: Path, precision: str, tile: int, batch: int) -> Path:
    from drcn.runtime.engine_build import BuildRequest, build_engine
    from drcn.runtime.engine_sidecar import read_sidecar

    engine = onnx_path.with_name(f"{onnx_path.stem}_t{tile}_b{batch}.engine")
    if engine.is_file():
        sidecar = read_sidecar(engine)
        if sidecar.tile == tile and sidecar.batch == batch:
            return engine
    build_engine(BuildRequest(onnx=onnx_path, engine=engine, fp16=precision == "fp16", tile=tile, batch=batch))
    return engine


def open_backend(method: str, precision: str, *, weights: str | None = None, onnx: str | None = None,
                 tile: int = 256, batch: int = 4, depth: int | None = None, device: str = "auto") -> Backend:
    """``method`` (onnxruntime, torch, tensorrt) running the model at ``precision``."""
    if method not in BACKENDS:
        raise DrcnError(f"--method: unknown method '{method}' (choose from {', '.join(BACKENDS)})")
    if precision not in BACKENDS[method].precisions:
        raise DrcnError(f"--precision {precision}: {method} runs {', '.join(BACKENDS[method].precisions)}")
    if method == "torch":
        if depth:
            raise DrcnError("--depth is measured on exported graphs (onnxruntime, tensorrt), not on torch")
        return create_backend("torch", str(resolve_weights(weights)), precision=precision, device=device)
    if onnx:
        graph = Path(onnx)
    else:
        graph = exported_onnx(weights, _graph_precision(method, precision), depth)
    if BACKENDS[method].model_kind == "engine":
        return create_backend(method, str(built_engine(graph, precision, tile, batch)))
    return create_backend(method, str(graph), precision=precision)


def _graph_precision(method: str, precision: str) -> str:
    """OpenVINO converts the fp32 graph itself; TensorRT 11 needs the fp16 graph for fp16 (strongly typed)."""
    if method == "onnxruntime":
        return precision
    if method == "tensorrt" and precision == "fp16" and _trt_strongly_typed():
        return "fp16"
    return "fp32"


def _trt_strongly_typed() -> bool:
    from drcn.runtime.tensorrt_common import import_tensorrt
    from drcn.runtime.trt_precision import major_version

    return major_version(import_tensorrt().__version__) >= 11
