"""PyTorch module -> one self-contained ONNX file with drcn metadata, written atomically."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from drcn.errors import DrcnError
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import INPUT_NAME, OUTPUT_NAME, OnnxModelInfo

EXPORT_SAMPLE_SHAPE = (1, 1, 64, 64)  # verification uses a different shape on purpose


@contextlib.contextmanager
def _quiet_torch_logs():
    """The exporter logs optional-package notices (e.g. torchvision ops it skips) on stderr: not our user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def write_onnx(module: torch.nn.Module, path: Path, info: OnnxModelInfo,
               static_shape: tuple[int, int, int] | None = None) -> None:
    """Export ``module`` with the dynamo exporter (opset ``info.opset``) and embed ``info`` as metadata.

    Writes ``path`` directly: the caller writes to a temporary name and renames it once every check passed.

    Args:
        static_shape: (N, H, W) for a fixed-shape graph; default dynamic batch, height and width.
    """
    import onnx

    channels = info.config.channels
    shape = (static_shape[0], channels, static_shape[1], static_shape[2]) if static_shape else EXPORT_SAMPLE_SHAPE
    sample = torch.rand(*shape)
    dynamic = None
    if static_shape is None:
        dim = torch.export.Dim
        dynamic = {"x": {0: dim("batch", min=1, max=4096), 2: dim("height", min=1, max=65535),
                         3: dim("width", min=1, max=65535)}}
    log = io.StringIO()
    try:
        # The exporter narrates every pass on stdout and warns about its own internals: keep that for errors.
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), _quiet_torch_logs():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (sample,), str(path), dynamo=True, external_data=False,
                              opset_version=info.opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=dynamic)
    except Exception as exc:
        tail = " | ".join(log.getvalue().strip().splitlines()[-3:])
        raise DrcnError(f"ONNX export failed at opset {info.opset}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''} {tail}".strip()) from exc
    model = load_onnx(path)
    # The exporter annotates every node with its Python stack trace (local paths included) and stores
    # intermediate shapes: ~10% of the file for a small model, and nothing a runtime needs.
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]
    del model.metadata_props[:]
    for key, value in info.to_props().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "drcn", info.version
    model.doc_string = (f"DRCN F={info.config.filters} D={info.config.recursions}, depth {info.depth}, "
                        f"{info.precision}; {info.to_props()['drcn.colour']}")
    onnx.save(model, str(path))
