"""``drcn-bench quality``: every requested method x scale x dataset, scored with the paper's conventions;
returns the results (the CLI prints and writes them)."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from drcn import evaluation
from drcn.benchmarks import methods as method_table
from drcn.benchmarks.methods import MethodOptions
from drcn.deviation import Deviation
from drcn.errors import DrcnError
from drcn.optional import installed


@dataclasses.dataclass(frozen=True)
class QualityRequest:
    datasets: tuple[evaluation.Dataset, ...]
    methods: tuple[str, ...] = ("bicubic",)
    scales: tuple[float, ...] = (2.0,)
    options: MethodOptions = MethodOptions()
    ensembles: tuple[int, ...] = (1,)      # self-ensemble sizes for the runtime backends (drcn.ensemble)


def method_names(requested: tuple[str, ...]) -> list[str]:
    """The methods to run: the requested ones, plus the PyTorch reference whenever a runtime backend is
    measured (every backend is reported against it) and torch is installed."""
    names = list(dict.fromkeys(requested))
    for name in names:
        if name not in method_table.available():
            raise DrcnError(f"--method: unknown method '{name}' (choose from {', '.join(method_table.available())})")
    runtime = [n for n in names if n not in ("bicubic", "torch")]
    if runtime and "torch" not in names and installed("torch"):
        names.append("torch")
    return names


def measure_quality(request: QualityRequest,
                    on_image: Callable[[str, float, str, evaluation.ImageScore], None] = lambda *_: None) -> dict:
    """results[method]["x2"][dataset] = {"psnr", "ssim", "images"[, "pixels"]}; ``on_image(method, scale, dataset,
    score)`` sees every image's score as it comes. Where the PyTorch reference runs (it runs first), every other
    model's cell has "pixels": the per-pixel deviation of its 8-bit Y output from the reference's
    (:meth:`drcn.deviation.Deviation.summary`)."""
    results: dict = {}
    reference: dict[tuple[str, str], dict] = {}     # (scale, dataset) -> image name -> the reference's prediction
    names = method_names(request.methods)
    if "torch" in names:   # first, so that every backend's pixels compare with it as they come
        names = ["torch"] + [n for n in names if n != "torch"]
    for base in names:
        # The ensemble is a deployment option: the bicubic baseline and the PyTorch reference stay single.
        for size in request.ensembles if base not in ("bicubic", "torch") else (1,):
            for factor in request.scales:
                # one method per scale: a backend's auto precision is chosen for the scale it serves, as in drcn-run
                method = method_table.create(base, dataclasses.replace(request.options, ensemble=size, scale=factor))
                name = method.name
                results.setdefault(name, {})[f"x{factor:g}"] = {}
                for dataset in request.datasets:
                    start = time.perf_counter()
                    predictions: dict = {}
                    scores = evaluation.evaluate(method, dataset, factor, predictions)
                    for score in scores:
                        on_image(name, factor, dataset.name, score)
                    cell = {**evaluation.summarise(scores), "seconds": time.perf_counter() - start}
                    key = (f"x{factor:g}", dataset.name)
                    if base == "torch":
                        reference[key] = predictions
                    elif base != "bicubic" and key in reference:
                        found = Deviation()
                        for image, prediction in predictions.items():
                            found.add(reference[key][image], prediction)
                        cell["pixels"] = found.summary()
                    results[name][f"x{factor:g}"][dataset.name] = cell
                backend = getattr(method, "backend", None)
                if backend is not None:   # one method's compiled models are freed before the next one's
                    cell_precision = getattr(backend, "verdict_name", None) or getattr(backend, "precision", None)
                    if cell_precision and base != "torch":
                        for cell in results[name][f"x{factor:g}"].values():
                            cell["precision"] = cell_precision
                    backend.close()
    return results
