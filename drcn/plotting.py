"""Figures for every stage (training curves, benchmark plots): matplotlib without a display, written atomically.
matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

from drcn.atomic import atomic_output
from drcn.optional import require


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); a one-line error where matplotlib is missing."""
    matplotlib = require("matplotlib", "drawing plots", "pip install matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` atomically and release it."""
    plt = pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
