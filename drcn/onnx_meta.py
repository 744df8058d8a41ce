"""The metadata every exported ONNX file carries (``metadata_props``), and reading it back.

The runtime takes the model's halo, colour convention and scales from here instead of asking the user; an ONNX
file without them was not written by ``drcn-export`` and is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable

from drcn import bounded_json
from drcn.config import ModelConfig
from drcn.ensemble import SUBSETS
from drcn.frame import KINDS, lr_halo
from drcn.errors import DrcnError

FORMAT = "1"
COLOUR = "Y of BT.601 YCbCr (MATLAB rgb2ycbcr), float32 in [0, 1]; input is the bicubic-upscaled image"
INPUT_NAME, OUTPUT_NAME = "input", "output"
FRAME_COLOUR = {
    "rgb": "RGB float32 in [0, 1], (N, 3, h, w) low resolution in, (N, 3, s*h, s*w) out; the network runs on Y of "
           "BT.601 YCbCr (MATLAB rgb2ycbcr), Cb and Cr enlarged with MATLAB bicubic",
    "gray": "one plane float32 in [0, 1] (e.g. luma), (N, 1, h, w) low resolution in, (N, 1, s*h, s*w) out"}


@dataclasses.dataclass(frozen=True)
class OnnxModelInfo:
    """What the runtime needs to know about an exported graph.

    ``depth`` is the number of recursions in the graph (≤ config.recursions with ``--depth``); the halo
    follows the graph, not the training config: depth + 4.

    ``kind`` (:data:`drcn.frame.KINDS`): "y" takes the bicubic-upscaled Y plane and returns the same size; "rgb"
    and "gray" take the low-resolution frame and return it ``scale`` times larger (the whole job in the graph).
    """

    config: ModelConfig
    depth: int
    precision: str          # "fp32" or "fp16" (arithmetic and weights); I/O is always float32
    ensemble: tuple[float, ...]
    weights_sha256: str
    version: str
    opset: int
    kind: str = "y"
    scale: int | None = None     # frame graphs: their fixed integer scale
    self_ensemble: int = 1       # flips/rotations averaged inside the graph (drcn-export --ensemble; drcn.ensemble)

    @property
    def halo(self) -> int:
        """The network's halo, in the pixels it sees (the enlarged Y plane)."""
        return self.depth + 4

    @property
    def input_halo(self) -> int:
        """Context pixels per side in the graph's own input pixels: what exact tiling of its input needs."""
        return self.halo if self.kind == "y" else lr_halo(self.halo, self.scale)

    @property
    def channels(self) -> int:
        """Channels of the graph's input and output."""
        return 3 if self.kind == "rgb" else self.config.channels

    @property
    def receptive_field(self) -> int:
        return 2 * self.halo + 1

    def to_props(self) -> dict[str, str]:
        frame = {} if self.kind == "y" else {
            "drcn.scale": str(self.scale), "drcn.lr_halo": str(self.input_halo),
            "drcn.colour": FRAME_COLOUR[self.kind]}
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
            "drcn.kind": self.kind,
            "drcn.self_ensemble": str(self.self_ensemble),
            **frame,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "ONNX file") -> "OnnxModelInfo":
        if props.get("drcn.format") != FORMAT:
            raise DrcnError(f"{source}: no drcn metadata (format {FORMAT}); export it with drcn-export")
        try:
            ensemble = bounded_json.loads(props["drcn.ensemble"], f"{source}: metadata drcn.ensemble")
            if not isinstance(ensemble, list) or not all(isinstance(w, (int, float)) for w in ensemble):
                raise ValueError("drcn.ensemble is not a list of numbers")
            info = cls(config=ModelConfig.from_json(props["drcn.config"], f"{source}: metadata drcn.config"),
                       depth=int(props["drcn.depth"]), precision=props["drcn.precision"], ensemble=tuple(ensemble),
                       weights_sha256=props["drcn.weights_sha256"], version=props["drcn.version"],
                       opset=int(props["drcn.opset"]), kind=props.get("drcn.kind", "y"),
                       scale=int(props["drcn.scale"]) if "drcn.scale" in props else None,
                       self_ensemble=int(props.get("drcn.self_ensemble", "1")))
            if info.kind not in KINDS or (info.kind != "y" and not (info.scale or 0) >= 2):
                raise ValueError(f"kind {info.kind!r} with scale {info.scale!r}")
            if info.self_ensemble not in SUBSETS:
                raise ValueError(f"self_ensemble {info.self_ensemble!r}")
        except (KeyError, ValueError) as exc:
            raise DrcnError(f"{source}: incomplete or invalid drcn metadata ({exc})") from None
        if int(props.get("drcn.halo", -1)) != info.halo:
            raise DrcnError(f"{source}: metadata halo {props.get('drcn.halo')} disagrees with depth {info.depth}")
        return info


def read_onnx_info(path: str | os.PathLike) -> OnnxModelInfo:
    """The :class:`OnnxModelInfo` of an ONNX file (reads the graph, not the weights; refuses external data outside
    the file's folder, :mod:`drcn.onnx_files`)."""
    from drcn.onnx_files import load_onnx

    # Every command and backend reads this first: the external-data check runs before any backend sees the file.
    return model_info(load_onnx(path, external=False), str(path))


def model_info(model, source: str = "ONNX model") -> OnnxModelInfo:
    """The :class:`OnnxModelInfo` of a loaded ModelProto (a graph being built or converted)."""
    return OnnxModelInfo.from_props({p.key: p.value for p in model.metadata_props}, source)


def is_int8_of(theirs: OnnxModelInfo, mine: OnnxModelInfo) -> bool:
    """Whether ``theirs`` describes an INT8 graph of the same model as the non-INT8 graph ``mine``: the same weights
    checksum, depth and config in the metadata, and the same kind, scale and self-ensemble (a Y graph's INT8 graph is
    a Y graph, an RGB x2 graph's an RGB x2 graph)."""
    return (theirs.precision == "int8" and mine.precision != "int8" and theirs.kind == mine.kind
            and theirs.scale == mine.scale and theirs.depth == mine.depth
            and theirs.self_ensemble == mine.self_ensemble
            and theirs.config == mine.config and theirs.weights_sha256 == mine.weights_sha256)


def int8_record(model) -> dict:
    """The ``drcn.int8`` record of a loaded INT8 graph (how it was made; {} where absent or unreadable)."""
    props = {p.key: p.value for p in model.metadata_props}
    try:
        record = bounded_json.loads(props.get("drcn.int8", "{}"), "metadata drcn.int8")
    except DrcnError:
        return {}
    return record if isinstance(record, dict) else {}


def int8_scales(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The scales an INT8 graph's activation ranges were chosen for (its ``drcn.int8`` record's ``scales``), or None
    for a graph made for every scale (before per-scale graphs, or where one set of ranges held at all of them)."""
    return _scales_in(_record_of(path))


def _record_of(path: str | os.PathLike) -> dict:
    from drcn.onnx_files import load_onnx

    return int8_record(load_onnx(path, external=False))


def _scales_in(record: dict) -> tuple[int, ...] | None:
    scales = record.get("scales")
    if not isinstance(scales, list) or not scales or not all(isinstance(s, int) for s in scales):
        return None
    return tuple(scales)


def int8_scale_of(scale: float) -> int:
    """The integer scale whose INT8 graph serves a run at ``scale``: itself, or the next one up (x2.5 -> x3)."""
    return int(math.ceil(scale - 1e-9))


def scale_sibling_name(path: str | os.PathLike, scale: int) -> Path:
    """``<stem>_x<scale>.onnx`` beside ``path``: the graph of one scale beside the file named for the first."""
    path = Path(path)
    return path.with_name(f"{path.stem}_x{scale}.onnx")


def int8_sibling_name(path: str | os.PathLike, scale: int | None = None) -> Path:
    """``<stem>_int8.onnx`` beside ``path``, or ``<stem>_int8_x<scale>.onnx`` for a graph made for one scale."""
    path = Path(path)
    general = path.with_name(f"{path.stem}_int8.onnx")
    return scale_sibling_name(general, scale) if scale else general


def int8_sibling(path: str | os.PathLike, scale: float | None = None,
                 log: Callable[[str], None] = lambda _: None) -> Path | None:
    """The INT8 graph of the same model as the fp32 graph at ``path``, or None. Only a graph for which
    :func:`is_int8_of` holds is used, so an INT8 graph left beside other weights is stale and never used.

    ``scale`` None: ``<stem>_int8.onnx`` beside it (whatever scales it was made for). A run at ``scale``: the graph
    made for it (a non-integer scale takes the next integer one up): ``<stem>_int8_x<s>.onnx``, else
    ``<stem>_int8.onnx`` where its record names ``s`` among its scales (or names none: made for every scale); looked
    for beside ``path``, then beside the shipped model. A per-scale graph that is stale, or a scale no graph was made
    for, is said in one line through ``log``; the caller then decides on what is there (None)."""
    path = Path(path)
    try:
        mine = read_onnx_info(path)
    except DrcnError:
        return None
    if scale is None or mine.kind != "y":
        # A frame graph has one scale: its INT8 sibling is that scale's (is_int8_of compares the scales).
        return _int8_of_mine(int8_sibling_name(path), mine)
    wanted = int8_scale_of(scale)
    folders = [path]
    from drcn.weights import default_weights_path

    shipped = default_weights_path().with_suffix(".onnx")
    if shipped.is_file() and shipped.resolve() != path.resolve() and _same_model(shipped, mine):
        folders.append(shipped)   # a copy or re-export of the shipped weights runs with the shipped INT8 graphs
    said = []
    for base in folders:
        per_scale = int8_sibling_name(base, wanted)
        if per_scale.is_file():
            found = _int8_of_mine(per_scale, mine)
            scales = int8_scales(found) if found else None
            if found and (scales is None or wanted in scales):
                return found
            said.append(f"{per_scale.name} is not an INT8 graph of {path.name} for x{wanted}"
                        f"{'' if found else ' (another model, or an older export)'}: not used")
        general = _int8_of_mine(int8_sibling_name(base), mine)
        if general is not None:
            record = _record_of(general)
            scales = _scales_in(record)
            if scales is None or wanted in scales:
                return general
            no_graph = record.get("no_graph")
            why = no_graph.get(f"x{wanted}") if isinstance(no_graph, dict) else None
            said.append(f"no INT8 graph for x{wanted} beside {path.name} ({general.name} is for "
                        f"x{', x'.join(map(str, scales))}; "
                        + (f"its export found none within the per-pixel bound at x{wanted}: {why})" if why else
                           f"drcn-export --int8 --scale {wanted} makes one)"))
    for line in dict.fromkeys(said):
        log(line)
    return None


def _same_model(path: Path, mine: OnnxModelInfo) -> bool:
    try:
        theirs = read_onnx_info(path)
    except DrcnError:
        return False
    return (theirs.weights_sha256, theirs.depth, theirs.config, theirs.self_ensemble) == \
        (mine.weights_sha256, mine.depth, mine.config, mine.self_ensemble)


def _int8_of_mine(candidate: Path, mine: OnnxModelInfo) -> Path | None:
    if not candidate.is_file():
        return None
    try:
        theirs = read_onnx_info(candidate)
    except DrcnError:
        return None
    return candidate if is_int8_of(theirs, mine) else None
