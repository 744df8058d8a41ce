"""The whole-frame job in PyTorch: :class:`FrameModel` wraps a :class:`drcn.model.DRCN` with the pre- and
post-processing of :mod:`drcn.frame` (the same operations as the ONNX frame graph), so the PyTorch backend runs
low-resolution RGB to upscaled RGB on the device (CUDA on the GPU runbook's H200).

The colour conversion, the enlargement and the rounding always run in float32; only the network runs in the
requested dtype (bf16/fp16 cannot hold the 0..255 grid those steps compute on).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from drcn import frame
from drcn.ensemble import groups
from drcn.model import DRCN


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Mirror ``pad`` pixels at each side of the last two axes, edge pixel included (MATLAB's borders)."""
    for axis in (-2, -1):
        n = x.shape[axis]
        left = torch.arange(pad - 1, -1, -1, device=x.device).clamp(max=n - 1)
        right = torch.arange(n - 1, n - 1 - pad, -1, device=x.device).clamp(min=0)
        x = torch.cat([x.index_select(axis, left), x, x.index_select(axis, right)], dim=axis)
    return x


def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5)


class FrameModel(nn.Module):
    """``forward``: (N, 3, h, w) RGB ("rgb") or (N, 1, h, w) ("gray") float32 in [0, 1] -> (N, C, s·h, s·w)
    float32 in [0, 1]. ``enlarged_y(x)`` is what the network sees, (N, 1, s·h, s·w) float32 in [0, 1]."""

    def __init__(self, network: DRCN, kind: str, scale: int, dtype: torch.dtype = torch.float32, ensemble: int = 1):
        """``ensemble``: the network's Y averaged over that many flips/rotations (:mod:`drcn.ensemble`), before
        colour conversion and clipping, as the host path and the ensemble graph do."""
        super().__init__()
        if kind not in ("rgb", "gray") or scale < 2:
            raise ValueError(f"FrameModel: kind rgb or gray and an integer scale >= 2, got {kind!r}, {scale!r}")
        self.network, self.kind, self.scale, self.dtype = network, kind, scale, dtype
        self.batches = groups(ensemble)
        self.ensemble = ensemble
        self.channels = 3 if kind == "rgb" else 1
        filters = torch.from_numpy(frame.phase_filters(scale)).float()[:, None]      # (s², 1, 5, 5)
        self.register_buffer("phases", filters.repeat(self.channels, 1, 1, 1), persistent=False)
        matrix, offset = frame.ycbcr_matrix()
        weight, bias = frame.rgb_matrix()
        self.register_buffer("to_ycbcr", torch.from_numpy(matrix).float()[:, :, None, None], persistent=False)
        self.register_buffer("to_ycbcr_bias", torch.from_numpy(offset).float(), persistent=False)
        self.register_buffer("to_rgb", torch.from_numpy(weight).float()[:, :, None, None], persistent=False)
        self.register_buffer("to_rgb_bias", torch.from_numpy(bias).float(), persistent=False)

    def _enlarge(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float32 in [0, 1] -> the enlarged planes on the uint8 grid, divided by 255."""
        if self.kind == "rgb":
            grid = _round_half_up(F.conv2d(x, self.to_ycbcr, self.to_ycbcr_bias).clamp(0.0, 255.0))
        else:
            grid = _round_half_up(x * 255.0)
        phases = F.conv2d(_symmetric_pad(grid, frame.PAD), self.phases, groups=self.channels)
        enlarged = F.pixel_shuffle(phases, self.scale)
        return _round_half_up(enlarged.clamp(0.0, 255.0)) / 255.0

    def enlarged_y(self, x: torch.Tensor) -> torch.Tensor:
        return self._enlarge(x.float())[:, :1]

    def _network(self, y: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) float32 -> the network's (N, 1, H, W) float32, averaged over the ensemble's transforms."""
        total = None
        for group in self.batches:
            moved = [torch.rot90(y, turns, dims=(2, 3)) for turns, _ in group]
            moved = [m.flip(3) if mirror else m for m, (_, mirror) in zip(moved, group)]
            out = self.network(torch.cat(moved).to(self.dtype)).float()
            for part, (turns, mirror) in zip(out.chunk(len(group)), group):
                part = torch.rot90(part.flip(3) if mirror else part, -turns, dims=(2, 3))
                total = part if total is None else total + part
        return total if self.ensemble == 1 else total / self.ensemble

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planes = self._enlarge(x.float())
        y = self._network(planes[:, :1])
        if self.kind == "gray":
            return y.clamp(0.0, 1.0)
        ycbcr = torch.cat([y, planes[:, 1:]], dim=1)
        return F.conv2d(ycbcr, self.to_rgb, self.to_rgb_bias).clamp(0.0, 1.0)
