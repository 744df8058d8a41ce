"""Per-scale activation ranges of an INT8 graph: the range study behind ``drcn-export --int8``'s graph per scale.

One set of per-tensor activation ranges cannot serve every scale (measured on the shipped model: x2's enlarged
inputs carry sharper edges whose activations the calibrated ranges clip, 26 levels off fp32, so x2 wants every range
about twice as wide; x4's smoother inputs want fine steps, and the same widening moves 0.05% of its values more than 4
levels). So for each scale the quantized graph's activation ranges are scaled by one factor, searched from 1 outwards
on the calibration images of that scale alone. Of the factors whose 8-bit output keeps half the PSNR limit, the
bound's share of values more than 4 levels off with its margin (:data:`drcn.deviation.CHECK_MARGIN`) and the bound's
worst value (:meth:`RangeTrial.holds` says why not its margin too), the one using least of the bound together with the
factors beside it makes that scale's graph. Weights and the structure stay as quantized: every graph of a model runs
at one speed.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from drcn import deviation
from drcn.deviation import Deviation
from drcn.fp16 import psnr_and_outputs

# Tried in this order from 1 outwards, towards whichever side improves, until the figure gets worse twice.
FACTORS = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


def activation_quantizers(model) -> list:
    """The QuantizeLinear nodes of ``model`` that quantize activations (their input is not an initializer)."""
    initializers = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in initializers]


def widened(model, factor: float | dict[str, float]):
    """A copy of the QDQ ``model`` with every activation range (each a tensor's scale initializer, shared by its Q and
    DQ) times ``factor``, or times ``factor[tensor]`` (default 1) for a dict keyed by the quantized tensor's name."""
    from onnx import numpy_helper

    copy = type(model)()
    copy.CopyFrom(model)
    initializers = {i.name: i for i in copy.graph.initializer}
    done = set()
    for node in activation_quantizers(copy):
        f = factor.get(node.input[0], 1.0) if isinstance(factor, dict) else factor
        name = node.input[1]
        if name in done or f == 1.0:
            continue
        done.add(name)
        scale = numpy_helper.to_array(initializers[name]) * np.float32(f)
        initializers[name].CopyFrom(numpy_helper.from_array(scale.astype(np.float32), name))
    return copy


def in_float(model, tensors=None):
    """A copy of the QDQ ``model`` with the activation Q/DQ pairs of ``tensors`` (every activation: None) removed,
    so that those tensors stay in float (the convolutions reading them then run in float; weights stay int8)."""
    copy = type(model)()
    copy.CopyFrom(model)
    quantizers = [q for q in activation_quantizers(copy) if tensors is None or q.input[0] in tensors]
    source = {n.output[0]: q.input[0] for n in copy.graph.node if n.op_type == "DequantizeLinear"
              for q in quantizers if n.input[0] == q.output[0]}
    keep = [n for n in copy.graph.node if n not in quantizers and not (n.op_type == "DequantizeLinear"
                                                                       and n.output[0] in source)]
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = source.get(name, name)
    del copy.graph.node[:]
    copy.graph.node.extend(keep)
    return copy


@dataclasses.dataclass
class RangeTrial:
    """One factor measured at one scale: the Y-PSNR change against fp32 (dB) and the per-pixel deviation."""

    factor: float
    change_db: float
    pixels: Deviation

    @property
    def score(self) -> float:
        """How much of the per-pixel bound it uses (1 = at the bound): the larger of its share of values more than 4
        levels off over the bound's share and its worst value over the bound's levels."""
        return max(self.pixels.share_over(deviation.OFF_LEVELS) / deviation.MAX_SHARE_OVER,
                   self.pixels.max / deviation.MAX_LEVELS)

    def key(self) -> tuple:
        """Sort key, best first: the least of the bound used, the fewest values more than 4 levels off, the least
        loss."""
        return (self.score, self.pixels.share_over(deviation.OFF_LEVELS), -self.change_db)

    def holds(self, limit_db: float, pixel_fraction: float) -> bool:
        """Within ``limit_db`` and, per pixel, ``pixel_fraction`` of the bound's share of values more than 4 levels
        off and the bound's worst value itself. Why not a fraction of the worst value too: the calibration images
        hold about 28 times the on-CPU check's values at x2 (80 crops of 384² against 15 of 168²) and a worst value
        grows with the count (measured at x2: 6-9 levels there where the check measures 5-7); the check keeps its
        margin on both, on its own images, on every CPU."""
        share = self.pixels.share_over(deviation.OFF_LEVELS)   # a fraction above 1 loosens the worst value too
        return (self.change_db >= -limit_db and share <= pixel_fraction * deviation.MAX_SHARE_OVER
                and self.pixels.max <= deviation.MAX_LEVELS * max(1.0, pixel_fraction))

    def describe(self) -> str:
        return f"ranges x{self.factor:g}: {self.change_db:+.4f} dB, {self.pixels.describe()}"


@dataclasses.dataclass
class ScaleRanges:
    """The range study at one scale: every factor tried, and the chosen one (None: none held)."""

    scale: int
    trials: list[RangeTrial]
    chosen: RangeTrial | None

    def record(self) -> dict:
        return {"factor": self.chosen.factor if self.chosen else None,
                "tried": [{"factor": t.factor, "psnr_change_db": round(t.change_db, 4), **t.pixels.summary()}
                          for t in self.trials]}


def study_scale(model, scale: int, pairs, reference_psnr: float, reference_outputs: list[np.ndarray],
                run_for: Callable, limit_db: float, pixel_fraction: float,
                log: Callable[[str], None] = lambda _: None, factors: tuple[float, ...] = FACTORS) -> ScaleRanges:
    """Search ``factors`` (ascending) for ``model``'s activation ranges at ``scale``, from the one nearest 1.
    ``pairs``: calibration pairs of that scale only ((HR Y, input, scale) uint8); ``reference_outputs``: fp32's
    (H, W) uint8 outputs on them; ``run_for(model)``: a runner, (1, 1, H, W) float32 -> same. Returns every factor tried and the best one that holds
    ``limit_db`` and ``pixel_fraction`` of the per-pixel bound (None if none does)."""
    measured: dict[float, RangeTrial] = {}

    def trial(factor: float) -> RangeTrial:
        if factor not in measured:
            scores, outputs = psnr_and_outputs(run_for(widened(model, factor)), pairs)
            found = Deviation()
            for expected, got in zip(reference_outputs, outputs, strict=True):
                found.add(expected, got)
            measured[factor] = RangeTrial(factor, scores[float(scale)] - reference_psnr, found)
            log(f"int8 ranges at x{scale}: {measured[factor].describe()}")
        return measured[factor]

    start = int(np.argmin([abs(np.log(f)) for f in factors]))
    best = trial(factors[start])
    for step in (1, -1):          # wider first (clipping is what breaks the bound at x2), then narrower
        worse, i = 0, start + step
        while 0 <= i < len(factors) and worse < 2:
            found = trial(factors[i])
            if found.key() < best.key():
                best, worse = found, 0
            else:
                worse += 1
            i += step
        if best.factor != factors[start]:   # the better side was found: the other cannot hold a better minimum
            break
    trials = sorted(measured.values(), key=lambda t: t.factor)
    holding = [t for t in trials if t.holds(limit_db, pixel_fraction)]
    return ScaleRanges(scale, trials, min(holding, key=lambda t: _robust(t, trials)) if holding else None)


def _robust(trial: RangeTrial, trials: list[RangeTrial]) -> tuple:
    """A trial's key judged with its measured neighbours: the worst value is a tail statistic that moves by a few
    levels from one factor to the next (measured at x2: 6, 9 and 7 levels at x1.75, x2 and x2.5), so a factor counts
    as good as the worse of itself and the factors beside it."""
    i = trials.index(trial)
    around = trials[max(0, i - 1):i + 2]
    return (max(t.score for t in around), *trial.key())
