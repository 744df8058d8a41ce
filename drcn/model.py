"""The DRCN network (Kim, Lee, Lee, CVPR 2016) in PyTorch.

    x ─► embed (conv3x3 C→F, ReLU, conv3x3 F→F, ReLU) ─► H0
    H_d = ReLU(W * H_{d-1} + b)             d = 1..D, ONE convolution reused D times
    ŷ_d = reconstruct(H_d) + x              reconstruct = conv3x3 F→F, ReLU, conv3x3 F→C, shared by all d
    ŷ   = Σ_d w_d · ŷ_d                     w_d learned

The input is the low-resolution image already upscaled to the target size by bicubic interpolation; the network
is size-preserving. Every convolution is 3x3 with zero padding 1, so an output pixel depends on a
(2D + 9)-pixel square of the input (``ModelConfig.receptive_field``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from drcn.config import ModelConfig


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class DRCN(nn.Module):
    """DRCN with recursive supervision.

    ``forward(x)`` takes (N, C, H, W) float32 in [0, 1] (the bicubic-upscaled image) and returns (N, C, H, W)
    float32, not clipped. With ``return_intermediates=True`` it also returns the D intermediate predictions
    stacked as (D, N, C, H, W).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c, f, d = self.config.channels, self.config.filters, self.config.recursions
        self.embed = nn.Sequential(_conv(c, f), nn.ReLU(inplace=True), _conv(f, f), nn.ReLU(inplace=True))
        self.recursive = _conv(f, f)
        self.reconstruct = nn.Sequential(_conv(f, f), nn.ReLU(inplace=True), _conv(f, c))
        self.ensemble = nn.Parameter(torch.full((d,), 1.0 / d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation, except the recursive convolution.

        As in the paper, the recursive weights start as the identity (only each channel's connection to
        itself, centre tap = 1) with zero bias, so that the D-fold recursion starts neither exploding nor
        vanishing: H_d = H_0 for every d at the start of training.
        """
        for module in (*self.embed, *self.reconstruct):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        last = self.reconstruct[-1]
        nn.init.normal_(last.weight, std=1e-3)  # predictions start near the bicubic input
        with torch.no_grad():
            self.recursive.weight.zero_()
            f = self.config.filters
            self.recursive.weight[torch.arange(f), torch.arange(f), 1, 1] = 1.0
            self.recursive.bias.zero_()
            self.ensemble.fill_(1.0 / self.config.recursions)

    def forward(self, x: torch.Tensor, return_intermediates: bool = False):
        h = self.embed(x)
        output = torch.zeros_like(x)
        predictions = []
        for d in range(self.config.recursions):
            h = F.relu(self.recursive(h))
            prediction = self.reconstruct(h) + x
            output = output + self.ensemble[d] * prediction
            if return_intermediates:
                predictions.append(prediction)
        if return_intermediates:
            return output, torch.stack(predictions)
        return output


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a reused module counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
