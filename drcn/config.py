"""The DRCN model configuration: a frozen, JSON-serialisable record that every stage carries.

Checkpoints, weight files, ONNX metadata and engine sidecars all embed this record, so nothing about the
architecture ever has to be re-typed on a command line.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from drcn import bounded_json
from drcn.errors import DrcnError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """DRCN architecture. Defaults are the paper's configuration (C=1 on Y, F=256, D=16).

    Attributes:
        channels: image channels C the network reads and writes (1 = the Y channel of BT.601 YCbCr).
        filters: feature maps F of every hidden convolution.
        recursions: D, how many times the shared inference convolution is applied.
        scales: upscaling factors the weights were trained for (metadata; the network itself is
            size-preserving and the scale is applied by bicubic interpolation before it).
    """

    channels: int = 1
    filters: int = 256
    recursions: int = 16
    scales: tuple[float, ...] = (2.0, 3.0, 4.0)

    def __post_init__(self) -> None:
        for name in ("channels", "filters", "recursions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DrcnError(f"model config: {name} must be a positive integer, got {value!r}")
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(s <= 1.0 for s in scales):
            raise DrcnError(f"model config: scales must be factors > 1, got {self.scales!r}")
        object.__setattr__(self, "scales", scales)

    @property
    def convolutions(self) -> int:
        """Convolutions on the longest path: 2 embedding + D recursions + 2 reconstruction."""
        return self.recursions + 4

    @property
    def halo(self) -> int:
        """Pixels of context each output pixel needs on every side (= D + 4, one per 3x3 conv)."""
        return self.convolutions

    @property
    def receptive_field(self) -> int:
        """Side of the square receptive field, 2·halo + 1 = 2D + 9 (41 at the paper's D = 16)."""
        return 2 * self.halo + 1

    @property
    def num_parameters(self) -> int:
        """Trainable parameters: 5 distinct convolutions plus D ensemble weights."""
        c, f, d = self.channels, self.filters, self.recursions
        conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
        return conv(c, f) + conv(f, f) + conv(f, f) + conv(f, f) + conv(f, c) + d

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel with every one of the D reconstructions computed."""
        c, f, d = self.channels, self.filters, self.recursions
        return 9 * (c * f + f * f + d * f * f + d * (f * f + f * c))

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "filters": self.filters, "recursions": self.recursions,
                "scales": list(self.scales)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        if not isinstance(data, Mapping):
            raise DrcnError(f"model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DrcnError(f"model config: unknown field(s) {', '.join(unknown)}")
        kwargs = dict(data)
        if "scales" in kwargs:
            kwargs["scales"] = tuple(kwargs["scales"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str, source: str = "model config") -> "ModelConfig":
        return cls.from_dict(bounded_json.loads(text, source))
