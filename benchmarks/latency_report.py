"""``drcn-bench latency``: measure every requested backend x precision x tile; returns records (the CLI prints)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Callable

from drcn import evaluation
from drcn.benchmarks import latency, variants
from drcn.benchmarks.environment import environment
from drcn.benchmarks.pipeline_bench import make_frames, pipeline_efficiency, ray_pipeline
from drcn.errors import DrcnError
from drcn.runtime.backends.select import auto_onnx_backend
from drcn.runtime.backends.table import BACKENDS, create_backend


@dataclasses.dataclass(frozen=True)
class LatencyRequest:
    """What to measure. The defaults are the quick report (about a minute on a 2-core CPU): per-tile latency
    only; :data:`FULL_REPORT` adds frames, the tiling overhead and the pipeline check (many minutes on a CPU)."""

    methods: tuple[str, ...] = ("auto", "onnxruntime")   # auto: the backend drcn-run picks here
    precisions: tuple[str, ...] = ("auto",)               # auto: the precision drcn-run picks (shown resolved)
    tiles: tuple[int, ...] = (256,)
    batch: int = 4
    repeat: int = 5
    warmup: int = 1
    frames: tuple[tuple[int, int], ...] = ()        # (H, W) output frames timed through exact tiling
    frame_repeat: int = 3
    overhead: tuple[int, int] | None = None         # (H, W) frame for the tiled-vs-whole check
    pipeline: int = 0                               # frames for the drcn-run pipeline check, 0 = skip
    ray: bool = False                               # with pipeline: also drcn-run --ray with 1 and 2 workers
    unfolded: bool = False
    quality: str | None = None                      # HR folder: also the x2 PSNR of every variant
    weights: str | None = None
    device: str = "auto"
    depths: tuple[int, ...] = ()                    # --depth variants (d recursions); () = the full model only
    ensembles: tuple[int, ...] = (1,)               # self-ensemble sizes (drcn.ensemble), each timed on one backend


# What ``drcn-bench latency --full`` adds to the quick default (options given explicitly still win).
FULL_REPORT = {"repeat": 10, "warmup": 2, "frames": ((720, 1280), (1080, 1920)), "overhead": (360, 640),
               "pipeline": 8}


def measure_latency(request: LatencyRequest, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """One record per method x precision x depth x tile x ensemble size that could run here; ``log`` receives progress lines."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        methods = [auto_onnx_backend() if m == "auto" else m for m in request.methods]
        methods = list(dict.fromkeys(methods))   # auto may name a backend asked for as well
        from drcn.weights import read_config, resolve_weights

        full = read_config(resolve_weights(request.weights)).recursions
        # the full depth is the model itself: the shipped graph (and its INT8 graph), as drcn-run runs it
        depths = tuple(None if d == full else d for d in request.depths) or (None,)
        plan = [(m, p, d) for m in methods for p in request.precisions for d in depths]
        for number, (method, precision, depth) in enumerate(plan, start=1):
            if precision not in BACKENDS[method].precisions:
                log(f"skip: {method} has no {precision} path")
                continue
            for tile in request.tiles:
                try:
                    backend = variants.open_backend(method, precision, weights=request.weights, tile=tile,
                                                    batch=request.batch, device=request.device,
                                                    depth=depth if depth else None)
                except DrcnError as exc:
                    if len(plan) == 1:
                        raise
                    log(f"skip: {method} {precision}: {exc}")
                    break
                try:
                    for size in request.ensembles:
                        record = _measure_variant(backend, method, precision, depth, tile, size, request, tmp, log,
                                                  f"[{number}/{len(plan)}]")
                        records.append(record)
                        log(summary_line(record))
                finally:
                    backend.close()
    if not records:
        raise DrcnError("nothing was measured: no requested backend could run here")
    return records


def _measure_variant(backend, method: str, precision: str, depth: int | None, tile: int, size: int,
                     request: LatencyRequest, tmp: str, log, step: str) -> dict:
    """One record: ``backend`` with the self-ensemble of ``size`` around each window."""
    from drcn.ensemble import ensemble_backend

    run = ensemble_backend(backend, size)
    log(f"{step} {backend.description}, tile {tile}" + (f", ensemble {size}" if size > 1 else "") + ": per tile")
    resolved = precision if precision != "auto" else f"auto={backend.spec.precision}"
    record = _measure_one(backend, run, method, resolved, tile, request, log)
    record["depth"] = depth or _full_depth(backend)
    record["ensemble"] = size
    if request.pipeline and size == 1:
        frames_dir = Path(tmp) / "frames"
        if not frames_dir.is_dir():
            make_frames(frames_dir, request.pipeline, 320, 180)
        log("  pipeline")
        record["pipeline"] = pipeline_efficiency(backend, frames_dir, 2.0, tile, request.batch)
        if request.ray:
            from drcn.runtime.upscaler import BackendRequest

            log("  pipeline on a local Ray, 1 and 2 workers")
            ray_request = BackendRequest(method, backend.spec.source, tile, request.batch,
                                         device=request.device, precision=precision)
            record["pipeline"]["ray"] = ray_pipeline(ray_request, frames_dir, 2.0)
    if request.quality:
        from drcn.benchmarks.methods import BackendMethod

        log("  quality")
        view = BackendMethod(backend, method, tile, request.batch, size)
        dataset = evaluation.folder_dataset(request.quality)
        record["psnr"] = evaluation.summarise(evaluation.evaluate(view, dataset, 2.0))["psnr"]
    return record


def _full_depth(backend) -> int | None:
    from drcn.onnx_meta import read_onnx_info

    source = backend.spec.source
    return read_onnx_info(source).depth if source.endswith(".onnx") else None


def _measure_one(backend, run, method: str, precision: str, tile: int, request: LatencyRequest, log) -> dict:
    halo = backend.spec.halo
    record = {"backend": method, "precision": precision, "tile": tile, "batch": request.batch, "halo": halo,
              "description": backend.description, "env": environment()}
    record.update(latency.tile_latency(run, tile, halo, request.batch, request.repeat, request.warmup))
    if request.unfolded and method == "onnxruntime" and precision == "fp32" and run is backend.run:
        log("  unfolded graph")
        plain = create_backend("onnxruntime", str(variants.exported_onnx(request.weights, "fp32", fold_output=False)))
        try:
            unfolded = latency.tile_latency(plain.run, tile, halo, request.batch, request.repeat, request.warmup)
        finally:
            plain.close()
        record["unfolded_median_ms"] = unfolded["median_ms"]
        record["fold_speedup"] = unfolded["median_ms"] / record["median_ms"]
    record["per_frame"] = []
    for h, w in request.frames:
        log(f"  frame {w}x{h}")
        record["per_frame"].append(latency.frame_latency(run, h, w, tile, halo, request.batch,
                                                         request.frame_repeat, 1))
    if request.overhead and tile:
        h, w = request.overhead
        log(f"  tiling overhead on {w}x{h}")
        record["tiling_overhead"] = latency.tiling_overhead(run, h, w, tile, halo, request.batch,
                                                            request.frame_repeat, 1)
    return record


def summary_line(r: dict) -> str:
    text = (f"{r['backend']} {r['precision']} tile {r['tile']}" + (f" depth {r['depth']}" if r.get("depth") else "")
            + (f" ensemble {r['ensemble']}" if r.get("ensemble", 1) > 1 else "")
            + f": {r['median_ms']:.1f} ms/tile (p90 "
            f"{r['p90_ms']:.1f}), {r['mpix_per_s']:.3f} Mpx/s")
    if "tiling_overhead" in r:
        o = r["tiling_overhead"]
        text += (f"; tiling x{o['measured_ratio']:.3f} vs x{o['theoretical_ratio']:.3f} theory, equal tiles "
                 f"x{o['equal_tiles_speedup']:.2f} faster than fixed windows (x{o['fixed_theoretical_ratio']:.3f})")
    if "fold_speedup" in r:
        text += f"; folding x{r['fold_speedup']:.2f} faster than unfolded"
    if "pipeline" in r:
        text += f"; pipeline {100 * r['pipeline']['efficiency']:.0f}% of compute"
        for workers, ray in r["pipeline"].get("ray", {}).items():
            text += f"; ray x{workers} {ray['fps'] / r['pipeline']['pipeline_fps']:.2f} of the plain pipeline"
    return text


def _reference(records: list[dict]) -> tuple[str, dict]:
    """The row every speed-up is measured against: PyTorch fp32 where measured, else ONNX Runtime fp32 (what the
    Quickstart ran before the CPU's fast path became the default)."""
    for backend, label in (("torch", "torch fp32"), ("onnxruntime", "onnxruntime fp32")):
        rows = {(r["tile"], r.get("depth")): r["median_ms"] for r in records
                if r["backend"] == backend and r["precision"] in ("fp32", "auto=fp32") and r.get("ensemble", 1) == 1}
        if rows:
            return label, rows
    return "-", {}


def latency_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    label, reference = _reference(records)
    headers = ["backend", "precision", "depth", "ensemble", "tile", "batch", "ms/tile (median)", "p90", "Mpx/s", f"vs {label}",
               *(f"frame {f['frame']} ms" for f in records[0]["per_frame"]), "tiling measured/theory",
               "pipeline/compute", "pipeline frames/s: plain / ray x1 / ray x2", "PSNR"]
    rows = []
    for r in records:
        ref = reference.get((r["tile"], r.get("depth")))
        o, p = r.get("tiling_overhead"), r.get("pipeline")
        rows.append([r["backend"], r["precision"], r.get("depth") or "-", r.get("ensemble", 1), r["tile"], r["batch"],
                     f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['mpix_per_s']:.3f}", f"{ref / r['median_ms']:.2f}x" if ref else "-",
                     *(f"{f['median_ms']:.0f}" for f in r["per_frame"]),
                     (f"{o['measured_ratio']:.3f}/{o['theoretical_ratio']:.3f}; fixed windows "
                      f"{o['fixed_theoretical_ratio']:.3f}, x{o['equal_tiles_speedup']:.2f} slower") if o else "-",
                     f"{100 * p['efficiency']:.0f}%" if p else "-",
                     " / ".join([f"{p['pipeline_fps']:.2f}", *(f"{v['fps']:.2f}" for v in p.get("ray", {}).values())])
                     if p else "-",
                     f"{r['psnr']:.3f}" if r.get("psnr") is not None else "-"])
    return headers, rows
