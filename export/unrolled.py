"""The export form of DRCN: the recursion written out d times, every use reading the same modules.

Because the D recursive steps and the D reconstructions call the very same ``nn.Conv2d`` objects, the exported
graph has D Conv nodes that all read ONE weight initializer (and likewise for the reconstruction net): the file
size does not grow with D.

Optional exact rewrite (``fold_output``): the last reconstruction conv is linear, so

    Σ_d w_d · (conv(z_d) + b + x) = conv(Σ_d w_d · z_d) + (Σ_d w_d)·(b + x)

which computes that F→C convolution once instead of D times.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from drcn.errors import DrcnError
from drcn.model import DRCN


class UnrolledDRCN(nn.Module):
    """``forward``: (N, C, H, W) float32 in [0, 1] -> (N, C, H, W) float32.

    Args:
        model: the trained DRCN (its modules are shared, not copied).
        depth: recursions to keep (≤ D); default all.
        ensemble: the ``depth`` ensemble weights; default the model's first ``depth`` ones.
        fold_output: apply the exact rewrite above.
        fp16: compute in float16 (weights converted by the caller); I/O stays float32 through Cast nodes.
    """

    def __init__(self, model: DRCN, depth: int | None = None, ensemble: torch.Tensor | None = None,
                 fold_output: bool = True, fp16: bool = False):
        super().__init__()
        self.embed, self.recursive, self.reconstruct = model.embed, model.recursive, model.reconstruct
        self.depth = depth or model.config.recursions
        if not 1 <= self.depth <= model.config.recursions:
            raise DrcnError(f"--depth {self.depth}: must be in 1..{model.config.recursions}, got {self.depth}")
        weights = model.ensemble.detach()[: self.depth] if ensemble is None else ensemble.detach()
        if weights.numel() != self.depth:
            raise DrcnError(f"--depth {self.depth}: need {self.depth} ensemble weights, got {weights.numel()}")
        # Python floats: they become scalar constants in the graph, in the graph's own precision.
        self.weights = [float(w) for w in weights.double()]
        self.fold_output, self.fp16 = fold_output, fp16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = x.half() if self.fp16 else x
        h = self.embed(inp)
        conv_mid, conv_out = self.reconstruct[0], self.reconstruct[2]
        acc = None
        for weight in self.weights:
            h = F.relu(self.recursive(h))
            if self.fold_output:
                term = weight * F.relu(conv_mid(h))
            else:
                term = weight * (self.reconstruct(h) + inp)
            acc = term if acc is None else acc + term
        if self.fold_output:
            total = sum(self.weights)
            acc = F.conv2d(acc, conv_out.weight, conv_out.bias * total, padding=1) + total * inp
        return acc.float() if self.fp16 else acc
