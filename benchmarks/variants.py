"""Backends at a given precision (and depth) for benchmarking, exporting or building the files they need.

ONNX variants are exported from the weights into a cache folder keyed by the weights' checksum, precision and
depth, so a second benchmark run reuses them; TensorRT builds its engines from them into its own engine cache.
"""

from __future__ import annotations

from pathlib import Path

from drcn import cache
from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.errors import DrcnError
from drcn.runtime.backends.table import BACKENDS, Backend, create_backend
from drcn.weights import resolve_weights


def exported_onnx(weights: str | None, precision: str, depth: int | None = None, calib=None,
                  fold_output: bool = True) -> Path:
    """The ONNX graph of ``weights`` at ``precision`` (and ``--depth``, ``--no-fold``), exported once and cached."""
    from drcn.export.exporter import export_model

    source = resolve_weights(weights)
    key = f"{file_sha256(source)[:16]}_{precision}" + (f"_d{depth}" if depth else "") + ("" if fold_output else "_nofold")
    path = cache_dir("bench") / f"{key}.onnx"
    if not cache.verified(path):
        export_model(path, weights=str(source), fp16=precision == "fp16", depth=depth, calib=calib,
                     fold_output=fold_output)
        cache.seal(path)
    return path


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
        graph = model_graph(method, precision, weights, depth)
    # The latency report's frames, pipeline and quality are x2: auto resolves as drcn-run's does at x2.
    return create_backend(method, str(graph), precision=precision, tile=tile, batch=batch, for_scale=2.0)


def model_graph(method: str, precision: str, weights: str | None, depth: int | None) -> Path:
    """The graph a backend runs for this variant: the shipped ONNX (and its shipped INT8 graph) for the shipped
    model, as drcn-run runs it; otherwise an export into the cache, with its INT8 graph made beside it when INT8 is
    asked for (``--precision int8``)."""
    if weights is None and depth is None and _graph_precision(method, precision) == "fp32":
        from drcn.runtime.backends.select import shipped_onnx_path

        shipped = shipped_onnx_path()
        if shipped.is_file():
            return shipped
    graph = exported_onnx(weights, _graph_precision(method, precision), depth)
    if precision == "int8":
        int8_graph(graph)
    return graph


def int8_graph(graph: Path) -> Path:
    """``<graph>_int8.onnx`` beside the cached fp32 ``graph``, quantized (drcn-export --int8) on first use and again
    when the INT8 recipe has changed since."""
    from drcn.onnx_meta import int8_sibling

    from drcn.export.int8 import RECIPE, export_int8, recipe_of

    target = graph.with_name(f"{graph.stem}_int8.onnx")
    found = int8_sibling(graph) if cache.verified(target) else None
    if found is not None and recipe_of(found) == RECIPE:
        return found
    made = export_int8(graph, target, scales=[2]).path   # its backends serve x2 (for_scale=2.0)
    cache.seal(made)
    return made


def _graph_precision(method: str, precision: str) -> str:
    """ONNX Runtime runs the graph's own precision; OpenVINO and TensorRT take the fp32 graph and lower it
    themselves (TensorRT: the FP16 flag or a checked FP16 conversion, see drcn.runtime.tensorrt.build)."""
    return precision if method == "onnxruntime" and precision == "fp16" else "fp32"
