"""``drcn-export --triton DIR``: a Triton Inference Server model repository for the exported model.

    DIR/drcn/config.pbtxt        input/output names, FP32 I/O, the fixed window that --tile implies, dynamic
                                 batching, an instance group, the TensorRT accelerator (FP16) on GPUs, and the
                                 halo/tile a client needs to tile exactly, as parameters
    DIR/drcn/1/model.onnx        the verified ONNX file (dynamic N/H/W, so the window is the config's choice)

Triton serves the ONNX with its ONNX Runtime backend; on GPUs the TensorRT execution accelerator builds FP16
engines for the window shape. The config is plain protobuf text, checked against Triton's own schema in the tests.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from drcn import atomic
from drcn.errors import DrcnError
from drcn.onnx_meta import FRAME_COLOUR, INPUT_NAME, OUTPUT_NAME, OnnxModelInfo


@dataclasses.dataclass(frozen=True)
class TritonRequest:
    folder: Path
    model_name: str = "drcn"
    tile: int = 256              # output pixels per window side; the window is tile + 2·halo
    max_batch: int = 8           # windows per request batch (dynamic batching fills up to this)
    instances: int = 1           # model instances per device
    device: str = "gpu"          # gpu: KIND_GPU with the TensorRT accelerator; cpu: KIND_CPU
    fp16: bool = True            # GPU: the TensorRT accelerator's precision_mode


def config_text(info: OnnxModelInfo, request: TritonRequest) -> str:
    """config.pbtxt for ``info``'s model, as protobuf text (Triton's ModelConfig)."""
    window = request.tile + 2 * info.halo
    channels = info.channels
    frame_graph = info.kind != "y"
    preferred = sorted({b for b in (request.max_batch // 2, request.max_batch) if b >= 1})
    accelerator = ""
    if request.device == "gpu":
        accelerator = f"""
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "{'FP16' if request.fp16 else 'FP32'}" }}
        parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
        parameters {{ key: "trt_engine_cache_enable" value: "1" }}
      }}
    ]
  }}
}}"""
    if frame_graph:
        parameters = {"drcn.kind": info.kind, "drcn.scale": info.scale, "drcn.lr_halo": info.input_halo,
                      "drcn.precision": info.precision, "drcn.colour": FRAME_COLOUR[info.kind],
                      "drcn.weights_sha256": info.weights_sha256}
        header = (f"# Written by drcn-export {info.version}. A client sends a low-resolution {info.kind} image as "
                  f"float32 in [0, 1],\n# [N, {channels}, h, w], and gets it back upscaled x{info.scale}: colour "
                  "conversion and MATLAB bicubic are in the model.\n# For frames too large for one request, tile "
                  f"in LR pixels with a halo of {info.input_halo} (drcn.runtime.tiling, scale={info.scale}).")
        dims_in = dims_out = f"{channels}, -1, -1"
    else:
        parameters = {"drcn.kind": "y", "drcn.halo": info.halo, "drcn.tile": request.tile, "drcn.window": window,
                      "drcn.scales": ",".join(f"{s:g}" for s in info.config.scales), "drcn.precision": info.precision,
                      "drcn.colour": "Y of BT.601 YCbCr, float32 in [0, 1], bicubic-upscaled input",
                      "drcn.weights_sha256": info.weights_sha256}
        header = (f"# Written by drcn-export {info.version}. A client cuts each bicubic-upscaled Y plane into windows "
                  f"of\n# {window}x{window} pixels (tile {request.tile} + 2 x halo {info.halo}), shifted inward at the "
                  "borders, and keeps\n# each window's central tile: exactly the full-image result (see "
                  "drcn.runtime.tiling).")
        dims_in = dims_out = f"{channels}, {window}, {window}"
    params = "\n".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items())
    return f"""{header}
name: "{request.model_name}"
platform: "onnxruntime_onnx"
max_batch_size: {request.max_batch}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims_in} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims_out} ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {', '.join(map(str, preferred))} ]
  max_queue_delay_microseconds: 500
}}
instance_group [
  {{
    count: {request.instances}
    kind: {'KIND_GPU' if request.device == 'gpu' else 'KIND_CPU'}
  }}
]{accelerator}
{params}
"""


def write_repository(onnx_path: Path, info: OnnxModelInfo, request: TritonRequest) -> Path:
    """Write the model repository for the verified ``onnx_path``; returns the model's folder."""
    model_dir = check_repository(request)
    # One artefact: both files complete before either is renamed, the model first and the config that makes
    # Triton load it last; a failure leaves the repository as it was.
    with atomic.atomic_outputs(model_dir / "1" / "model.onnx", model_dir / "config.pbtxt") as (model_tmp, config_tmp):
        shutil.copyfile(onnx_path, model_tmp)
        config_tmp.write_text(config_text(info, request))
    return model_dir


def check_repository(request: TritonRequest) -> Path:
    """The model's folder in the repository, after checking (creating nothing) that it can be written."""
    if request.device not in ("gpu", "cpu"):
        raise DrcnError(f"--triton-device {request.device}: gpu or cpu")
    if not request.model_name or "/" in request.model_name:
        raise DrcnError(f"--triton-name {request.model_name!r}: a plain folder name")
    atomic.check_destination(request.folder, "--triton", folder=True)
    model_dir = request.folder / request.model_name
    if model_dir.exists() and not model_dir.is_dir():
        raise DrcnError(f"--triton {request.folder}: {model_dir} exists and is not a folder")
    for path in (model_dir / "1" / "model.onnx", model_dir / "config.pbtxt"):
        atomic.check_destination(path, "--triton")
    return model_dir
