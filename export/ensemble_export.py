"""``drcn-export --ensemble N``: the Y graph wrapped in the geometric self-ensemble (:mod:`drcn.runtime.ensemble_graph`),
checked against the host computation it replaces before it is written.

The check runs the wrapped graph and :func:`drcn.ensemble.ensemble_run` around the plain graph in ONNX Runtime on
windows of the bundled photos (one square, one not, so quarter turns swap a real height and width): the same
network on the same inputs, summed in the same order, so they agree to float32 rounding (``MAX_DIFF``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from drcn import matlab
from drcn.atomic import atomic_output
from drcn.errors import DrcnError
from drcn.onnx_meta import OnnxModelInfo
from drcn.optional import require

MAX_DIFF = 1e-5                       # on the [0, 1] scale: 0.003 grey levels
WINDOWS = ((96, 96), (72, 104))       # (H, W) of the checked windows


@dataclasses.dataclass
class EnsembleExport:
    path: Path
    info: OnnxModelInfo
    windows: int
    max_abs_diff: float


def export_ensemble_graph(y_onnx: Path, target: Path, size: int) -> EnsembleExport:
    """Write ``y_onnx`` wrapped in the self-ensemble of ``size`` transforms to ``target`` and check it."""
    require("onnxruntime", "checking a self-ensemble graph", "pip install 'drcn[export]'")
    from drcn.ensemble import ensemble_run
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.ensemble_graph import write_ensemble_graph
    from drcn.samples import load_sample

    with atomic_output(target) as checked:   # renamed into place only once the check has passed
        info = write_ensemble_graph(y_onnx, checked, size)
        wrapped, plain = OnnxRuntimeBackend(str(checked)), OnnxRuntimeBackend(str(y_onnx))
        try:
            host = ensemble_run(plain.run, size)
            luma = matlab.luma(load_sample("astronaut")).astype(np.float32) / np.float32(255.0)
            worst = 0.0
            for i, (h, w) in enumerate(WINDOWS):
                x = np.ascontiguousarray(luma[None, None, 40 * i:40 * i + h, 60 * i:60 * i + w])
                worst = max(worst, float(np.abs(wrapped.run(x) - host(x)).max()))
        finally:
            wrapped.close()
            plain.close()
        if not worst <= MAX_DIFF:
            raise DrcnError(f"--ensemble {size}: the graph differs from the ensemble computed around the plain graph "
                            f"by up to {worst:.2e} (limit {MAX_DIFF:g}); nothing written")
    return EnsembleExport(target, info, len(WINDOWS), worst)
