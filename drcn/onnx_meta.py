"""The metadata every exported ONNX file carries (``metadata_props``), and reading it back.

The runtime takes the model's halo, colour convention and scales from here instead of asking the user; an ONNX
file without them was not written by ``drcn-export`` and is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from drcn.config import ModelConfig
from drcn.errors import DrcnError
from drcn.optional import require

FORMAT = "1"
COLOUR = "Y of BT.601 YCbCr (MATLAB rgb2ycbcr), float32 in [0, 1]; input is the bicubic-upscaled image"
INPUT_NAME, OUTPUT_NAME = "input", "output"


@dataclasses.dataclass(frozen=True)
class OnnxModelInfo:
    """What the runtime needs to know about an exported graph.

    ``depth`` is the number of recursions in the graph (≤ config.recursions with ``--depth``); the halo
    follows the graph, not the training config: depth + 4.
    """

    config: ModelConfig
    depth: int
    precision: str          # "fp32" or "fp16" (arithmetic and weights); I/O is always float32
    ensemble: tuple[float, ...]
    weights_sha256: str
    version: str
    opset: int

    @property
    def halo(self) -> int:
        return self.depth + 4

    @property
    def receptive_field(self) -> int:
        return 2 * self.halo + 1

    def to_props(self) -> dict[str, str]:
        return {
            "drcn.format": FORMAT,
            "drcn.config": self.config.to_json(),
            "drcn.depth": str(self.depth),
            "drcn.halo": str(self.halo),
            "drcn.receptive_field": str(self.receptive_field),
            "drcn.colour": COLOUR,
            "drcn.scales": ",".join(f"{s:g}" for s in self.config.scales),
            "drcn.precision": self.precision,
            "drcn.io_dtype": "float32",
            "drcn.ensemble": json.dumps(list(self.ensemble)),
            "drcn.weights_sha256": self.weights_sha256,
            "drcn.version": self.version,
            "drcn.opset": str(self.opset),
            "drcn.input": INPUT_NAME,
            "drcn.output": OUTPUT_NAME,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "ONNX file") -> "OnnxModelInfo":
        if props.get("drcn.format") != FORMAT:
            raise DrcnError(f"{source}: no drcn metadata (format {FORMAT}); export it with drcn-export")
        try:
            info = cls(config=ModelConfig.from_json(props["drcn.config"]), depth=int(props["drcn.depth"]),
                       precision=props["drcn.precision"], ensemble=tuple(json.loads(props["drcn.ensemble"])),
                       weights_sha256=props["drcn.weights_sha256"], version=props["drcn.version"],
                       opset=int(props["drcn.opset"]))
        except (KeyError, ValueError) as exc:
            raise DrcnError(f"{source}: incomplete or invalid drcn metadata ({exc})") from None
        if int(props.get("drcn.halo", -1)) != info.halo:
            raise DrcnError(f"{source}: metadata halo {props.get('drcn.halo')} disagrees with depth {info.depth}")
        return info


def read_onnx_info(path: str | os.PathLike) -> OnnxModelInfo:
    """The :class:`OnnxModelInfo` of an ONNX file (reads the graph, not the weights)."""
    onnx = require("onnx", "reading ONNX files", "pip install 'drcn[onnx]'")
    path = Path(path)
    if not path.is_file():
        raise DrcnError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises a variety of types for a non-ONNX file
        raise DrcnError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    return OnnxModelInfo.from_props({p.key: p.value for p in model.metadata_props}, str(path))
