"""``drcn-export --rgb/--gray``: the whole-frame graph (low-resolution frame in, upscaled frame out) around the
verified Y graph, checked against the host path it replaces before it is written.

The check runs the new graph in ONNX Runtime on the bundled sample photos, degraded as the paper does, and
compares its output with ``drcn-run``'s host path (numpy colour and MATLAB bicubic around the same Y graph):
float32 against float64 may flip a rounding edge, so at most 0.1% of pixels may differ, by at most 3 grey levels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn import frame, matlab
from drcn.atomic import atomic_output
from drcn.errors import DrcnError
from drcn.onnx_meta import OnnxModelInfo
from drcn.optional import require

MAX_DIFFERING = 1e-3     # fraction of output pixels that may differ from the host path
MAX_LEVELS = 3           # grey levels a float32 rounding flip in Y and Cr together can move R by


@dataclasses.dataclass
class FrameExport:
    path: Path
    info: OnnxModelInfo
    images: int
    differing: float        # fraction of output values that differ from the host path
    max_levels: int


@dataclasses.dataclass
class Agreement:
    """How far a frame graph's outputs are from the host path's, summed over images."""

    differing: int = 0      # output values that differ
    total: int = 0
    worst: int = 0          # the largest difference, in grey levels
    images: int = 0

    def add(self, got: np.ndarray, want: np.ndarray) -> None:
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        self.differing += int((diff > 0).sum())
        self.total += diff.size
        self.worst = max(self.worst, int(diff.max()))
        self.images += 1

    @property
    def fraction(self) -> float:
        return self.differing / max(self.total, 1)


def against_host(graph, y_network, lr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(the frame graph's output, drcn-run's host path output) for the LR image ``lr``, both uint8 images.
    ``graph`` and ``y_network`` are backends of the frame graph and of the Y graph inside it."""
    from drcn.runtime.media.colour import upscale_image

    got = frame.from_output(graph.run(frame.to_input(lr)))
    return got, upscale_image(lr, scale, lambda y: y_network.run(y[None, None])[0, 0])


def export_frame_graph(y_onnx: Path, target: Path, kind: str, scale: int) -> FrameExport:
    """Write the ``kind`` ("rgb" or "gray") graph for ``scale`` around ``y_onnx`` to ``target`` and check it."""
    require("onnxruntime", "checking a whole-frame graph", "pip install 'drcn[export]'")
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.frame_graph import write_frame_graph
    from drcn.samples import SAMPLE_NAMES, load_sample

    with atomic_output(target) as checked:   # renamed into place only once the check has passed
        info = write_frame_graph(y_onnx, checked, kind, scale)
        graph, y_network = OnnxRuntimeBackend(str(checked)), OnnxRuntimeBackend(str(y_onnx))
        agreement = Agreement()
        try:
            for name in SAMPLE_NAMES[:3]:
                photo = load_sample(name)
                if kind == "gray":
                    photo = matlab.luma(photo)
                elif photo.ndim == 2:
                    continue
                lr = matlab.imresize(matlab.modcrop(photo, scale)[:192, :192], 1.0 / scale)
                agreement.add(*against_host(graph, y_network, lr, scale))
        finally:
            graph.close()
            y_network.close()
        fraction, worst = agreement.fraction, agreement.worst
        if fraction > MAX_DIFFERING or worst > MAX_LEVELS:
            raise DrcnError(f"--{kind}: the graph differs from the host path on {100 * fraction:.3f}% of pixels, by "
                            f"up to {worst} levels (limits {100 * MAX_DIFFERING:g}%, {MAX_LEVELS}); nothing written")
    return FrameExport(target, info, agreement.images, fraction, worst)
