"""``drcn-export --rgb/--gray``: the whole-frame graph (low-resolution frame in, upscaled frame out) around the
verified Y graph, checked against the host path it replaces before it is written.

Users convert these graphs (``ovc`` compresses weights to fp16 by default, pnnx stores fp16), so every constant in
them lies on the fp16 grid: the colour and bicubic filters as a high and a low fp16 part (``GraphBuilder.split_conv``)
and, for an fp32 network, its weights moved to the nearest fp16 value (the change this makes is measured on the
calibration images and must stay within ``MAX_GRID_DROP``). Storing the graph in fp16 then changes no output value;
the export checks that too (``MAX_STORED_DIFFERING``).

The host check runs the new graph in ONNX Runtime on the bundled sample photos, degraded as the paper does, and
compares its output with ``drcn-run``'s host path (numpy colour and MATLAB bicubic around the same network):
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
MAX_GRID_DROP = 0.05     # dB of calibration Y-PSNR that moving an fp32 network's weights to the fp16 grid may cost
                         # (the INT8 limit; the shipped model gains 0.0005 dB, a tiny random test model loses 0.02)
MAX_STORED_DIFFERING = 1e-4   # fraction of output values the graph stored in fp16 may change (by one level at most)


@dataclasses.dataclass
class FrameExport:
    path: Path
    info: OnnxModelInfo
    images: int
    differing: float        # fraction of output values that differ from the host path
    max_levels: int
    stored: "Agreement | None"   # the graph with every constant stored in fp16 against itself (None: INT8)
    grid_psnr: tuple[float, float] | None = None   # calibration Y-PSNR before / after the fp16 grid (fp32 nets)


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


def network_on_fp16_grid(y_onnx: Path, target: Path) -> tuple[float, float] | None:
    """Write ``y_onnx`` with its weights moved to the fp16 grid to ``target``; (calibration Y-PSNR before, after).
    An fp16 network is on the grid already and an INT8 one keeps its float scales (None: ``target`` is a copy)."""
    import shutil

    import onnx

    from drcn.calibration import calibration_pairs
    from drcn.fp16 import psnr_change
    from drcn.onnx_files import load_onnx
    from drcn.onnx_meta import model_info
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.onnx_builder import on_fp16_grid

    model = load_onnx(y_onnx)
    info = model_info(model, str(y_onnx))
    if info.precision != "fp32":
        shutil.copyfile(y_onnx, target)
        return None
    on_fp16_grid(model)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "drcn.weights_grid": "fp16 (every weight holds an fp16 value, in float32)"})
    onnx.save(model, str(target))
    before, after = OnnxRuntimeBackend(str(y_onnx)), OnnxRuntimeBackend(str(target))
    try:
        return psnr_change(before.run, after.run, calibration_pairs(None, info.config.scales, max_images=6))
    finally:
        before.close()
        after.close()


def stored_in_fp16(graph_path: Path, target: Path) -> None:
    """``graph_path`` as a converter that stores every float32 initializer and Constant in fp16 leaves it (values
    rounded to fp16, computed in float32): the ONNX form of what ``ovc`` and pnnx do by default."""
    import onnx

    from drcn.onnx_files import load_onnx
    from drcn.runtime.onnx_builder import on_fp16_grid

    model = load_onnx(graph_path)
    on_fp16_grid(model)
    onnx.save(model, str(target))


def export_frame_graph(y_onnx: Path, target: Path, kind: str, scale: int, fp16_grid: bool = True) -> FrameExport:
    """Write the ``kind`` ("rgb" or "gray") graph for ``scale`` around ``y_onnx`` to ``target`` and check it.
    ``fp16_grid`` False keeps the network's weights exactly as trained (storing them in fp16 then changes
    outputs; the stored check is skipped)."""
    import tempfile

    require("onnxruntime", "checking a whole-frame graph", "pip install 'drcn[export]'")
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from drcn.runtime.frame_graph import write_frame_graph
    from drcn.samples import SAMPLE_NAMES, load_sample

    with tempfile.TemporaryDirectory() as scratch, atomic_output(target) as checked:
        # renamed into place only once every check has passed
        network = Path(scratch) / "network.onnx" if fp16_grid else Path(y_onnx)
        grid_psnr = network_on_fp16_grid(y_onnx, network) if fp16_grid else None
        if grid_psnr and grid_psnr[0] - grid_psnr[1] > MAX_GRID_DROP:
            raise DrcnError(f"--{kind}: the network's weights on the fp16 grid cost {grid_psnr[0] - grid_psnr[1]:.4f} "
                            f"dB on calibration images (limit {MAX_GRID_DROP} dB); nothing written (--no-fp16-grid "
                            "keeps them as trained)")
        info = write_frame_graph(network, checked, kind, scale)
        graph, y_network = OnnxRuntimeBackend(str(checked)), OnnxRuntimeBackend(str(network))
        # An INT8 network's scales are float32 by design (and the tools that store fp16 by default do not load QDQ).
        stored = None if info.precision == "int8" or not fp16_grid else Agreement()
        stored_graph = None
        if stored is not None:
            stored_in_fp16(checked, Path(scratch) / "stored.onnx")
            stored_graph = OnnxRuntimeBackend(str(Path(scratch) / "stored.onnx"))
        agreement = Agreement()
        try:
            for name in SAMPLE_NAMES[:3]:
                photo = load_sample(name)
                if kind == "gray":
                    photo = matlab.luma(photo)
                elif photo.ndim == 2:
                    continue
                lr = matlab.imresize(matlab.modcrop(photo, scale)[:192, :192], 1.0 / scale)
                got, want = against_host(graph, y_network, lr, scale)
                agreement.add(got, want)
                if stored_graph is not None:
                    stored.add(frame.from_output(stored_graph.run(frame.to_input(lr))), got)
        finally:
            for backend in (graph, y_network, stored_graph):
                if backend is not None:
                    backend.close()
        fraction, worst = agreement.fraction, agreement.worst
        if fraction > MAX_DIFFERING or worst > MAX_LEVELS:
            raise DrcnError(f"--{kind}: the graph differs from the host path on {100 * fraction:.3f}% of pixels, by "
                            f"up to {worst} levels (limits {100 * MAX_DIFFERING:g}%, {MAX_LEVELS}); nothing written")
        if stored is not None and (stored.fraction > MAX_STORED_DIFFERING or stored.worst > 1):
            raise DrcnError(f"--{kind}: stored in fp16 the graph changes {100 * stored.fraction:.3f}% of its values, "
                            f"by up to {stored.worst} levels (limits {100 * MAX_STORED_DIFFERING:g}%, 1); nothing "
                            "written")
    return FrameExport(target, info, agreement.images, fraction, worst, stored, grid_psnr)
