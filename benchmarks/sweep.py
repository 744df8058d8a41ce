"""The paper's "recursion versus performance" figure: PSNR and latency for depth d = 1..D (``--depth``)."""

from __future__ import annotations

from drcn import evaluation
from drcn.benchmarks import latency, variants
from drcn.benchmarks.methods import MethodOptions, create
from drcn.weights import load_model


def recursion_sweep(val_folder: str, scale: float, tile: int, batch: int, repeat: int, warmup: int,
                    weights: str | None = None, calib=None, progress=print) -> list[dict]:
    depth_max = load_model(weights).config.recursions
    dataset = evaluation.folder_dataset(val_folder)
    records = []
    for depth in range(1, depth_max + 1):
        graph = variants.exported_onnx(weights, "fp32", depth if depth < depth_max else None, calib)
        method = create("onnxruntime", MethodOptions(onnx=str(graph)))
        summary = evaluation.summarise(evaluation.evaluate(method, dataset, scale))
        timing = latency.tile_latency(method.backend.run, tile, method.backend.spec.halo, batch, repeat, warmup)
        records.append({"depth": depth, "psnr": summary["psnr"], "ssim": summary["ssim"], "dataset": dataset.name,
                        "scale": scale, "tile": tile, "batch": batch, **timing})
        progress(f"depth {depth}/{depth_max}: {summary['psnr']:.3f} dB, {timing['median_ms']:.1f} ms per tile")
        method.backend.close()
    return records
