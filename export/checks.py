"""Checks run on every exported graph: validity, weight tying, and numerical parity with PyTorch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn.errors import DrcnError, backend_reason
from drcn.onnx_files import load_onnx

DISTINCT_CONV_WEIGHTS = 5  # embed x2, the recursive conv, reconstruction x2


@dataclasses.dataclass
class GraphReport:
    conv_nodes: int
    distinct_conv_weights: int
    initializers: int
    parameters: int           # elements in all initializers
    initializer_bytes: int
    file_bytes: int


def _resolve(name: str, identities: dict[str, str]) -> str:
    while name in identities:  # exporters may alias a shared tensor through Identity nodes
        name = identities[name]
    return name


def graph_report(path: Path) -> GraphReport:
    from onnx import numpy_helper

    model = load_onnx(path)
    graph = model.graph
    identities = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    weights = {_resolve(n.input[1], identities) for n in convs}
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    return GraphReport(conv_nodes=len(convs), distinct_conv_weights=len(weights), initializers=len(arrays),
                       parameters=int(sum(a.size for a in arrays)),
                       initializer_bytes=int(sum(a.nbytes for a in arrays)), file_bytes=path.stat().st_size)


def check_graph(path: Path, depth: int, expected_parameters: int, bytes_per_parameter: int) -> GraphReport:
    """onnx.checker (full), tying (5 distinct Conv weights, ≥ depth + 4 Conv nodes), no duplicated weights."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise DrcnError(f"{path}: onnx.checker rejects the exported graph: {backend_reason(exc)}") from exc
    report = graph_report(path)
    if report.distinct_conv_weights != DISTINCT_CONV_WEIGHTS:
        raise DrcnError(f"{path}: {report.distinct_conv_weights} distinct Conv weights, expected "
                        f"{DISTINCT_CONV_WEIGHTS}: the recursion's weights are not tied")
    if report.conv_nodes < depth + 4:
        raise DrcnError(f"{path}: only {report.conv_nodes} Conv nodes for depth {depth}: the recursion was not "
                        "unrolled")
    budget = expected_parameters * bytes_per_parameter
    if report.initializer_bytes > 1.05 * budget:
        raise DrcnError(f"{path}: {report.initializer_bytes} bytes of weights for {expected_parameters} "
                        f"parameters (> 5% over {budget}): weights were duplicated")
    return report


def run_onnx(path: Path, x: np.ndarray) -> tuple[np.ndarray, str]:
    """Run the graph on CPU: ONNX Runtime where it has the kernels, else the ``onnx.reference`` evaluator."""
    from drcn.optional import installed

    if installed("onnxruntime"):
        import onnxruntime as ort
        from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as KernelMissing

        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return session.run(None, {session.get_inputs()[0].name: x})[0], "ONNX Runtime CPU"
        except KernelMissing:  # e.g. an fp16 kernel this ONNX Runtime build does not have: the reference runs it
            pass
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, {"input": x})[0], "onnx.reference"
