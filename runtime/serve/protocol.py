"""The Open Inference Protocol (KServe v2; Triton's HTTP/REST protocol) for one model, JSON and binary tensors.

Requests and responses are plain data here (bytes and dicts in, numpy arrays and bytes out), so the protocol is
tested without a server; :mod:`.app` puts it on HTTP. The binary tensor extension: the request body is the JSON
header followed by the raw tensor bytes, its length in the ``Inference-Header-Content-Length`` header; an input
with ``parameters.binary_data_size`` takes its bytes from there, in input order. Outputs come back binary when the
request asks for it (``parameters.binary_data_output`` or an output's ``parameters.binary_data``), else as JSON.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from drcn import bounded_json
from drcn.errors import DrcnError

HEADER_LENGTH = "Inference-Header-Content-Length"
DTYPES = {"FP32": np.float32}
EXTENSIONS = ["binary_tensor_data"]


class ProtocolError(DrcnError):
    """A request that does not follow the protocol or the model's contract: HTTP 400, with this message."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]          # -1: any size

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclasses.dataclass
class InferRequest:
    id: str | None
    array: np.ndarray               # the one input, validated against the spec
    binary_output: bool


def parse_infer(body: bytes, header_length: str | None, spec: TensorSpec, output_name: str) -> InferRequest:
    """One v2 infer request for a model with one input ``spec`` -> the input array, checked: its name, datatype,
    shape (against the spec, and against the data's length) and, for binary data, the sizes the header declares."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH}: {header_length!r} is not a number") from None
        if not 0 < length <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {length} does not fit a body of {len(body)} bytes")
        header, binary = body[:length], memoryview(body)[length:]
    else:
        header, binary = body, memoryview(b"")
    request = bounded_json.loads(header, "inference request", max_bytes=len(header) + 1)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError("inference request: a JSON object with an 'inputs' list")
    inputs = request["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(f"inference request: the model takes one input '{spec.name}', got {len(inputs)}")
    tensor = inputs[0]
    if tensor.get("name") != spec.name:
        raise ProtocolError(f"input {tensor.get('name')!r}: the model's input is '{spec.name}'")
    if tensor.get("datatype") != spec.datatype:
        raise ProtocolError(f"input '{spec.name}': datatype {tensor.get('datatype')!r}, the model takes "
                            f"{spec.datatype}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != len(spec.shape)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
            or any(want != -1 and got != want for got, want in zip(shape, spec.shape))):
        raise ProtocolError(f"input '{spec.name}': shape {shape}, the model takes {list(spec.shape)} (-1: any size >= 1)")
    dtype = np.dtype(DTYPES[spec.datatype])
    count = int(np.prod(shape))
    params = tensor.get("parameters") or {}
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
            raise ProtocolError(f"input '{spec.name}': binary_data_size {size!r}, but {len(binary)} bytes follow "
                                "the JSON header")
        if size != count * dtype.itemsize:
            raise ProtocolError(f"input '{spec.name}': {size} bytes of data for shape {shape} "
                                f"({count * dtype.itemsize} needed)")
        array = np.frombuffer(binary, dtype=dtype).reshape(shape)
    else:
        if len(binary):
            raise ProtocolError(f"{len(binary)} bytes follow the JSON header, but no input declares binary data")
        data = tensor.get("data")
        if not isinstance(data, list):
            raise ProtocolError(f"input '{spec.name}': 'data' (a flat list of numbers) or binary data is needed")
        try:
            array = np.asarray(data, dtype=dtype)
        except (TypeError, ValueError):
            raise ProtocolError(f"input '{spec.name}': 'data' is not a list of numbers") from None
        if array.size != count:
            raise ProtocolError(f"input '{spec.name}': {array.size} values for shape {shape} ({count} needed)")
        array = array.reshape(shape)
    if not np.isfinite(array).all():
        raise ProtocolError(f"input '{spec.name}': values must be finite")
    outputs = request.get("outputs") or []
    for output in outputs:
        if not isinstance(output, dict) or output.get("name") != output_name:
            raise ProtocolError(f"output {output.get('name') if isinstance(output, dict) else output!r}: the "
                                f"model's output is '{output_name}'")
    parameters = request.get("parameters") or {}
    binary_output = bool(parameters.get("binary_data_output")) or any(
        (o.get("parameters") or {}).get("binary_data") for o in outputs)
    request_id = request.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, np.ascontiguousarray(array),
                        binary_output)


def infer_response(model: str, version: str, request: InferRequest, output_name: str,
                   result: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the response carrying ``result`` (float32) as ``output_name``."""
    result = np.ascontiguousarray(result, dtype=np.float32)
    output = {"name": output_name, "datatype": "FP32", "shape": list(result.shape)}
    response = {"model_name": model, "model_version": version, "outputs": [output]}
    if request.id is not None:
        response["id"] = request.id
    if not request.binary_output:
        output["data"] = result.reshape(-1).tolist()
        return json.dumps(response).encode(), {"Content-Type": "application/json"}
    data = result.tobytes()
    output["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps(response).encode()
    return header + data, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def model_metadata(model: str, version: str, platform: str, inputs: list[TensorSpec],
                   outputs: list[TensorSpec], parameters: dict[str, str]) -> dict:
    return {"name": model, "versions": [version], "platform": platform,
            "inputs": [t.metadata() for t in inputs], "outputs": [t.metadata() for t in outputs],
            "parameters": parameters}


def error_body(message: str, request_id: str | None = None) -> bytes:
    """The protocol's error response: ``{"error": "<message>"}``, with ``"request_id"`` where the server logged the
    failure under that id (an unexpected one)."""
    return json.dumps({"error": message, **({"request_id": request_id} if request_id else {})}).encode()
