"""``drcn-bench latency``: measure every requested backend x precision x tile and report it."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from drcn import atomic
from drcn.benchmarks import latency, tables, variants
from drcn.benchmarks.environment import environment
from drcn.errors import DrcnError


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure_all(args) -> int:
    from drcn.benchmarks.cli import write_json

    records = []
    frames_dir = None
    tmp = tempfile.TemporaryDirectory()
    try:
        for method in args.method:
            for precision in args.precision:
                if precision not in variants.PRECISIONS.get(method, ()):
                    _log(f"skip: {method} has no {precision} path")
                    continue
                for tile in args.tile:
                    try:
                        backend = variants.open_backend(method, precision, weights=args.weights, tile=tile,
                                                        batch=args.batch, device=args.device)
                    except DrcnError as exc:
                        if len(args.method) * len(args.precision) == 1:
                            raise
                        _log(f"skip: {method} {precision}: {exc}")
                        break
                    halo = backend.spec.halo
                    _log(f"measuring {backend.description}, tile {tile}")
                    record = {"backend": method, "precision": precision, "tile": tile, "batch": args.batch,
                              "halo": halo, "description": backend.description, "env": environment()}
                    record.update(latency.tile_latency(backend.run, tile, halo, args.batch, args.repeat,
                                                       args.warmup))
                    if args.unfolded and method == "onnxruntime" and precision == "fp32":
                        from drcn.runtime.backend import create_backend

                        plain = create_backend("onnxruntime", str(variants.exported_onnx(args.weights, "fp32",
                                                                                          fold_output=False)))
                        unfolded = latency.tile_latency(plain.run, tile, halo, args.batch, args.repeat, args.warmup)
                        record["unfolded_median_ms"] = unfolded["median_ms"]
                        record["fold_speedup"] = unfolded["median_ms"] / record["median_ms"]
                        plain.close()
                    record["per_frame"] = [latency.frame_latency(backend.run, h, w, tile, halo, args.batch,
                                                                 args.frame_repeat, 1) for h, w in args.frames]
                    if args.overhead and tile:
                        h, w = args.overhead[0]
                        record["tiling_overhead"] = latency.tiling_overhead(backend.run, h, w, tile, halo,
                                                                            args.batch, args.frame_repeat, 1)
                    if args.pipeline:
                        from drcn.benchmarks.pipeline_bench import make_frames, pipeline_efficiency

                        if frames_dir is None:
                            frames_dir = make_frames(Path(tmp.name) / "frames", args.pipeline, 320, 180)
                        record["pipeline"] = pipeline_efficiency(backend, frames_dir, 2.0, tile, args.batch)
                    if args.quality:
                        from drcn.benchmarks.methods import BackendMethod
                        from drcn.benchmarks.quality import evaluate, folder_dataset, summarise

                        view = BackendMethod(backend, method, tile, args.batch)
                        record["psnr"] = summarise(evaluate(view, folder_dataset(args.quality), 2.0))["psnr"]
                    backend.close()
                    records.append(record)
                    _log(summary_line(record))
    finally:
        tmp.cleanup()
    if not records:
        raise DrcnError("nothing was measured: no requested backend could run here")
    headers, rows = latency_rows(records)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(tables.plain(headers, rows), end="", file=out)
    if args.md:
        atomic.write_text(Path(args.md), tables.markdown(headers, rows))
    if args.json:
        write_json(args.json, records)
    if args.plot and args.quality:
        from drcn.benchmarks.plots import psnr_latency_figure

        psnr_latency_figure(records, Path(args.plot))
    return 0


def summary_line(r: dict) -> str:
    text = (f"{r['backend']} {r['precision']} tile {r['tile']}: {r['median_ms']:.1f} ms/tile (p90 "
            f"{r['p90_ms']:.1f}), {r['mpix_per_s']:.3f} Mpx/s")
    if "tiling_overhead" in r:
        o = r["tiling_overhead"]
        text += f"; tiling x{o['measured_ratio']:.3f} vs x{o['theoretical_ratio']:.3f} theory"
    if "fold_speedup" in r:
        text += f"; folding x{r['fold_speedup']:.2f} faster than unfolded"
    if "pipeline" in r:
        text += f"; pipeline {100 * r['pipeline']['efficiency']:.0f}% of compute"
    return text


def latency_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    reference = {r["tile"]: r["median_ms"] for r in records if r["backend"] == "torch" and r["precision"] == "fp32"}
    headers = ["backend", "precision", "tile", "batch", "ms/tile (median)", "p90", "Mpx/s", "vs torch fp32",
               *(f"frame {f['frame']} ms" for f in (records[0]["per_frame"] or [])), "tiling measured/theory",
               "pipeline/compute", "PSNR"]
    rows = []
    for r in records:
        ref = reference.get(r["tile"])
        o, p = r.get("tiling_overhead"), r.get("pipeline")
        rows.append([r["backend"], r["precision"], r["tile"], r["batch"], f"{r['median_ms']:.1f}",
                     f"{r['p90_ms']:.1f}", f"{r['mpix_per_s']:.3f}", f"{ref / r['median_ms']:.2f}x" if ref else "-",
                     *(f"{f['median_ms']:.0f}" for f in r["per_frame"]),
                     f"{o['measured_ratio']:.3f}/{o['theoretical_ratio']:.3f}" if o else "-",
                     f"{100 * p['efficiency']:.0f}%" if p else "-",
                     f"{r['psnr']:.3f}" if r.get("psnr") is not None else "-"])
    return headers, rows
