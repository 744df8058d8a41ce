"""``export_model``: weights file -> verified ONNX file. The steps, in order:

1. load the weights (config inside); 2. ``--depth``: refit the ensemble on calibration patches;
3. build the unrolled module (fp32, or fp16 with float32 I/O); 4. write the graph to a temporary file;
5. check it (onnx.checker, tying, size); 6. run it in ONNX Runtime against PyTorch on a shape not used while
exporting; 7. FP16: activation range and PSNR change on calibration images; 8. rename into place.
Any failed step leaves no file behind.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch

from drcn import __version__
from drcn.atomic import atomic_output
from drcn.errors import DrcnError
from drcn.export.checks import GraphReport, check_graph, run_onnx
from drcn.testinputs import smooth_test_input
from drcn.export.depth import DepthRefit
from drcn.fp16 import Fp16Report, check_fp16
from drcn.export.onnx_writer import write_onnx
from drcn.export.unrolled import UnrolledDRCN
from drcn.onnx_meta import OnnxModelInfo
from drcn.checksums import file_sha256
from drcn.weights import load_model, resolve_weights

VERIFY_SHAPE = (2, 1, 75, 101)          # differs from EXPORT_SAMPLE_SHAPE in every dimension
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
DEFAULT_OPSET = 18


@dataclasses.dataclass
class ExportResult:
    path: Path
    info: OnnxModelInfo
    graph: GraphReport
    max_abs_diff: float
    tolerance: float
    verified_with: str
    verify_shape: tuple[int, ...]
    refit: DepthRefit | None = None
    fp16: Fp16Report | None = None


def export_model(onnx_path: str | Path, weights: str | None = None, opset: int = DEFAULT_OPSET,
                 fp16: bool = False, depth: int | None = None, calib: list[str] | None = None,
                 static_shape: tuple[int, int, int] | None = None, fold_output: bool = True) -> ExportResult:
    onnx_path = Path(onnx_path)
    if onnx_path.suffix != ".onnx":
        raise DrcnError(f"--onnx {onnx_path}: the file name must end in .onnx")
    weights_path = resolve_weights(weights)
    model = load_model(weights_path)
    config = model.config
    depth = depth or config.recursions
    if not 1 <= depth <= config.recursions:
        raise DrcnError(f"--depth {depth}: must be between 1 and the model's D = {config.recursions}")

    refit = None
    ensemble = model.ensemble.detach()
    if depth < config.recursions:
        from drcn.calibration import calibration_patches
        from drcn.export.depth import refit_ensemble

        refit = refit_ensemble(model, depth, *calibration_patches(calib, config.scales))
        ensemble = refit.weights

    precision = "fp16" if fp16 else "fp32"
    info = OnnxModelInfo(config=config, depth=depth, precision=precision,
                         ensemble=tuple(float(w) for w in ensemble), weights_sha256=file_sha256(weights_path),
                         version=__version__, opset=opset)
    source = copy.deepcopy(model).half() if fp16 else model
    module = UnrolledDRCN(source, depth, ensemble, fold_output=fold_output, fp16=fp16)
    # The reference is the plain PyTorch model whenever the graph should equal it; otherwise the same
    # truncated ensemble computed the straightforward way (no folding), in fp32.
    reference = model if depth == config.recursions else UnrolledDRCN(model, depth, ensemble, fold_output=False)

    with atomic_output(onnx_path) as tmp:
        write_onnx(module, tmp, info, static_shape)
        graph = check_graph(tmp, depth, config.num_parameters, 2 if fp16 else 4)
        shape = (static_shape[0], config.channels, *static_shape[1:]) if static_shape else VERIFY_SHAPE
        x = smooth_test_input(shape)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(x)).numpy()
        got, runner = run_onnx(tmp, x)
        diff = float(np.abs(got - expected).max())
        if not diff <= TOLERANCE[precision]:
            raise DrcnError(f"verification failed: {runner} output differs from PyTorch by {diff:.3g} "
                            f"(limit {TOLERANCE[precision]:g} for {precision})")
        fp16_report = None
        if fp16:
            from drcn.calibration import calibration_pairs
            from drcn.export.fp16_check import fp16_report as measure

            fp16_report = measure(reference, lambda a: run_onnx(tmp, a)[0], calibration_pairs(calib, config.scales))
            check_fp16(fp16_report, "--fp16", "export fp32 instead")
    graph.file_bytes = onnx_path.stat().st_size
    return ExportResult(onnx_path, info, graph, diff, TOLERANCE[precision], runner, shape, refit, fp16_report)
