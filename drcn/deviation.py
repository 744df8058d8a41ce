"""Per-pixel deviation of one 8-bit output from another (a precision against fp32 of the same model): what an
average such as a PSNR change hides. A histogram of absolute differences, so that images add up and every figure
(max, 99.99th percentile, share of values more than N levels off) is exact over all of them.

The bound every precision a drcn tool picks by itself must hold (``auto``): at most
:data:`MAX_SHARE_OVER` of the values more than :data:`OFF_LEVELS` levels off, none more than :data:`MAX_LEVELS`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from drcn.errors import DrcnError

OFF_LEVELS = 4          # a value this many 8-bit levels off or more is "off"...
MAX_SHARE_OVER = 1e-4   # ...and at most this share (0.01%) of the values may be
MAX_LEVELS = 12         # no value further off than this
# What a choice made on calibration or check images must keep: HALF the bound (at most 6 levels, 0.005% more than 4
# off), the other half being the margin for images it has not seen, as the INT8 export keeps half its PSNR limit.
# Measured: INT8 at x3 passed the full bound on the check images (max 7 levels) and moved Set14 x3 by up to 30 levels.
CHECK_MARGIN = 0.5


@dataclasses.dataclass
class Deviation:
    """Counts of |a - b| over every value compared: ``counts[d]`` values differ by exactly d levels (0..255)."""

    counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))

    def add(self, reference: np.ndarray, test: np.ndarray) -> "Deviation":
        """Count the values of ``test`` against ``reference``: same shape, uint8 (any layout, e.g. (H, W) Y or
        (H, W, 3) RGB). Returns self, so that images chain."""
        reference, test = np.asarray(reference), np.asarray(test)
        if reference.shape != test.shape:
            raise DrcnError(f"deviation: outputs differ in shape: {reference.shape} vs {test.shape}")
        if reference.dtype != np.uint8 or test.dtype != np.uint8:
            raise DrcnError(f"deviation is measured on 8-bit outputs, got {reference.dtype} and {test.dtype}")
        diff = np.abs(reference.astype(np.int16) - test.astype(np.int16)).ravel()
        self.counts += np.bincount(diff, minlength=256)
        return self

    def merged(self, other: "Deviation") -> "Deviation":
        return Deviation(self.counts + other.counts)

    @property
    def values(self) -> int:
        return int(self.counts.sum())

    @property
    def max(self) -> int:
        nonzero = np.flatnonzero(self.counts)
        return int(nonzero[-1]) if nonzero.size else 0

    def percentile(self, q: float) -> int:
        """The smallest d such that at least ``q`` percent of the values are at most d levels off."""
        if not self.values:
            return 0
        cumulative = np.cumsum(self.counts)
        return int(np.searchsorted(cumulative, q / 100.0 * self.values - 1e-9))

    def share_over(self, levels: int) -> float:
        """The share (0..1) of values MORE than ``levels`` levels off."""
        return float(self.counts[levels + 1:].sum()) / self.values if self.values else 0.0

    def summary(self) -> dict:
        """The figures every report quotes: max, p99.99, shares (percent) more than 1 and 4 levels off."""
        return {"max": self.max, "p99.99": self.percentile(99.99), "over1_pct": round(100 * self.share_over(1), 4),
                "over4_pct": round(100 * self.share_over(OFF_LEVELS), 4), "values": self.values}

    def describe(self) -> str:
        return (f"max {self.max} levels, p99.99 {self.percentile(99.99)}, {100 * self.share_over(1):.3f}% > 1, "
                f"{100 * self.share_over(OFF_LEVELS):.4f}% > {OFF_LEVELS}")

    def exceeds(self, fraction: float = 1.0) -> tuple[str, str] | None:
        """(what, bound) where this deviation fails the bound ("1.4% of values more than 4 levels off", "0.01%"),
        None within. ``fraction`` < 1 tightens both limits (a check keeping a margin for unseen images)."""
        share, max_share, max_levels = self.share_over(OFF_LEVELS), MAX_SHARE_OVER * fraction, MAX_LEVELS * fraction
        if share > max_share:
            return f"{100 * share:.3g}% of values more than {OFF_LEVELS} levels off", f"{100 * max_share:g}%"
        if self.max > max_levels:
            return f"a value {self.max} levels off", f"{max_levels:g}"
        return None

    def breach(self, fraction: float = 1.0) -> str:
        """:meth:`exceeds` as a clause ("1.4% of values more than 4 levels off (bound 0.01%)"); "" within."""
        found = self.exceeds(fraction)
        return f"{found[0]} (bound {found[1]})" if found else ""


def deviation(reference: np.ndarray, test: np.ndarray) -> Deviation:
    """:class:`Deviation` of one pair of 8-bit outputs."""
    return Deviation().add(reference, test)


def by_scale(pairs, reference: list[np.ndarray], outputs: list[np.ndarray]) -> dict[str, Deviation]:
    """Per scale ("x2"), the deviation of ``outputs`` from ``reference``: each a list of (H, W) uint8 in the order of
    calibration ``pairs`` ((HR Y, input, scale), :func:`drcn.calibration.calibration_pairs`)."""
    found: dict[str, Deviation] = {}
    for (_, _, scale), expected, got in zip(pairs, reference, outputs, strict=True):
        found.setdefault(f"x{scale:g}", Deviation()).add(expected, got)
    return found


def worst(found: dict[str, Deviation]) -> tuple[str, Deviation]:
    """(scale, deviation) of the scale furthest off: the most values more than :data:`OFF_LEVELS` off, then the
    largest single deviation; ("", empty) for nothing measured."""
    if not found:
        return "", Deviation()
    return max(found.items(), key=lambda item: (item[1].share_over(OFF_LEVELS), item[1].max))
