"""The one way the toolkit opens an ONNX file: its external data confined to the model's own folder.

An ONNX file may keep tensors outside itself (``external_data`` with a ``location``). Loaders resolve that location
against the model's folder, or, when a graph is handed over as bytes, against the working directory; a crafted file
can point at ``/etc/passwd`` or ``../../secret`` and have its bytes built into an engine that is then shared. Every
ONNX file the toolkit reads goes through :func:`check_confined` before any backend sees it: each location must be a
relative path without ``..``, inside the model's folder once symbolic links are followed, and an existing file.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from drcn.errors import DrcnError
from drcn.optional import require

INSTALL = "pip install 'drcn[onnx]'"


def _tensors(graph):
    """Every TensorProto in ``graph`` and its subgraphs: initializers, sparse initializers, node attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes):
    """Every TensorProto in the attributes of ``nodes`` (a graph's or a function's), subgraphs included."""
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)


def external_locations(model) -> list[tuple[str, str]]:
    """(tensor name, location) for every tensor of ``model`` (a ModelProto loaded without its external data)
    whose data lives in another file."""
    onnx = require("onnx", "reading ONNX files", INSTALL)
    found = []
    tensors = [_tensors(model.graph)] + [_node_tensors(function.node) for function in model.functions]
    for tensor in (t for group in tensors for t in group):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            found.append((tensor.name, entries.get("location", "")))
    return found


def check_confined(model, path: str | os.PathLike) -> list[tuple[str, str]]:
    """Refuse ``model`` (loaded from ``path`` without external data) when any external-data location could read a
    file outside ``path``'s folder; one line naming the file, the tensor and the location. Returns the (tensor,
    location) pairs it checked (:func:`external_locations`)."""
    path = Path(path)
    base = path.absolute().parent          # what ONNX's own loaders resolve locations against
    folder = base.resolve()
    located = external_locations(model)
    for tensor, location in located:
        where = f"{path}: tensor '{tensor}' keeps its data in {location!r}"
        if not location:
            raise DrcnError(f"{path}: tensor '{tensor}' has external data without a location")
        if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
                or PureWindowsPath(location).drive or location.startswith(("/", "\\"))):
            raise DrcnError(f"{where}, an absolute path: external data must lie in the model's folder ({folder})")
        parts = location.replace("\\", "/").split("/")
        if ".." in parts:
            raise DrcnError(f"{where}, which climbs out with '..': external data must lie in the model's folder "
                            f"({folder})")
        target = (base / location).resolve()
        if folder not in target.parents:
            raise DrcnError(f"{where}, which leads outside the model's folder ({folder}) through a symbolic link")
        if not target.is_file():
            raise DrcnError(f"{where}, which does not exist beside the model")
    return located


def load_onnx(path: str | os.PathLike, external: bool = True):
    """The ModelProto at ``path``, its external data checked by :func:`check_confined` and then loaded
    (``external=False``: checked, not loaded); one-line errors for a missing or non-ONNX file."""
    onnx = require("onnx", "reading ONNX files", INSTALL)
    path = Path(path)
    if not path.is_file():
        raise DrcnError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises a variety of types for a non-ONNX file
        raise DrcnError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if check_confined(model, path) and external:
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.absolute().parent))
        except (OSError, ValueError) as exc:
            raise DrcnError(f"{path}: cannot read its external data ({exc})") from None
    return model
