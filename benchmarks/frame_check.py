"""``drcn-bench framegraph DIR ...``: the whole-frame graph against drcn-run's host path on real images, the bar
``drcn-export --rgb`` must clear: share of differing pixels, the largest difference, and Y-PSNR of both against
the HR originals (paper conventions), per scale."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import matlab, metrics
from drcn.evaluation import check_measurable, shave_border
from drcn.images import list_images, read_image


def check_frame_graph(folders: list[str], y_onnx: str, scales: tuple[int, ...] = (2, 3, 4),
                      log: Callable[[str], None] = lambda _: None) -> list[dict]:
    from drcn.export.frame_export import Agreement, against_host
    from drcn.runtime.frame_graph import write_frame_graph
    from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    y_backend = OnnxRuntimeBackend(y_onnx)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            graphs = {}
            for kind in ("rgb", "gray"):
                write_frame_graph(y_onnx, Path(tmp) / f"{kind}.onnx", kind, scale)
                graphs[kind] = OnnxRuntimeBackend(str(Path(tmp) / f"{kind}.onnx"))
            agreement = Agreement()
            psnr_graph, psnr_host = [], []
            for folder in folders:
                for path in list_images(folder):
                    hr = read_image(path)
                    check_measurable(hr.shape, scale, str(path))
                    hr = matlab.modcrop(hr, scale)
                    hr = hr[:, :, :3] if hr.ndim == 3 else hr
                    lr = matlab.imresize(hr, 1.0 / scale)
                    kind = "rgb" if lr.ndim == 3 else "gray"
                    got, want = against_host(graphs[kind], y_backend, lr, scale)
                    agreement.add(got, want)
                    border = shave_border(scale)
                    psnr_graph.append(metrics.psnr(matlab.luma(hr), matlab.luma(got), border))
                    psnr_host.append(metrics.psnr(matlab.luma(hr), matlab.luma(want), border))
            worst = agreement.worst
            record = {"scale": scale, "images": agreement.images, "differing": agreement.fraction,
                      "max_levels": worst, "psnr_graph": float(np.mean(psnr_graph)),
                      "psnr_host": float(np.mean(psnr_host))}
            log(f"x{scale}: {100 * record['differing']:.4f}% of values differ, at most {worst} level(s); Y-PSNR "
                f"{record['psnr_graph']:.4f} (graph) vs {record['psnr_host']:.4f} dB (host path)")
            records.append(record)
            for backend in graphs.values():
                backend.close()
    return records


def frame_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["scale", "images", "values differing", "max |diff| (levels)", "Y-PSNR graph", "Y-PSNR host path",
               "difference dB"]
    rows = [[f"x{r['scale']}", r["images"], f"{100 * r['differing']:.4f}%", r["max_levels"], f"{r['psnr_graph']:.4f}",
             f"{r['psnr_host']:.4f}", f"{r['psnr_graph'] - r['psnr_host']:+.4f}"] for r in records]
    return headers, rows
