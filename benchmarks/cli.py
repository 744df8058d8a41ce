"""``drcn-bench``: measure what the toolkit produces.

    drcn-bench quality [DIR ...] --scale 2,3,4 --method bicubic,torch,onnxruntime [--json FILE] [--md FILE]
    drcn-bench latency --method onnxruntime,torch --tile 256 [--full] [--json FILE] [--md FILE]
    drcn-bench sweep DIR --scale 2                      # PSNR and latency for --depth d = 1..D
    drcn-bench recursions [DIR ...] --scale 2           # PSNR of each intermediate prediction
    drcn-bench compare photo_lr.png --hr photo.png      # one PNG: nearest | bicubic | drcn | original
    drcn-bench paths --backend torch --device cuda      # frames/s: host path, device path, network alone
    drcn-bench temporal --precision auto,fp32           # does a precision flicker on a panning clip?
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from drcn import atomic
from drcn.argtypes import (ensemble_sizes, frame_sizes, names, non_negative_int, positive_float, positive_int,
                           positive_ints, scale, scales)
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-bench"


def _add_outputs(p, *, md: bool = True) -> None:
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    if md:
        p.add_argument("--md", metavar="FILE", help="also write the table as Markdown")


def _add_quality_parser(sub) -> None:
    from drcn.benchmarks import methods

    q = sub.add_parser("quality", help="Y-PSNR and SSIM on HR image folders (paper conventions)",
                       description="Evaluate methods on folders of HR images: each image is mod-cropped, "
                                   "shrunk and re-enlarged with MATLAB bicubic, super-resolved, and scored on Y "
                                   "with a border of `scale` pixels shaved.")
    q.add_argument("folders", nargs="*", metavar="DIR",
                   help="folders of HR images; none = scikit-image's bundled sample photos")
    q.add_argument("--scale", type=scales, default=(2.0,), help="factor(s) > 1, e.g. 2 or 2,3,4 (default 2)")
    q.add_argument("--method", type=names, default=["bicubic"],
                   help=f"one or more of: {', '.join(methods.available())} (comma-separated)")
    q.add_argument("--weights", help="safetensors weights for --method torch (default: the shipped model)")
    q.add_argument("--onnx", help="ONNX file for the ONNX methods (default: model.onnx here, else shipped)")
    q.add_argument("--engine", help="TensorRT engine for --method tensorrt (default: model.engine here)")
    q.add_argument("--tile", type=non_negative_int, default=0,
                   help="runtime methods: tile side, 0 = whole images (default)")
    q.add_argument("--batch", type=positive_int, default=4, help="runtime methods: tiles per call (default 4)")
    q.add_argument("--device", default="auto", help="PyTorch device for --method torch (auto, cpu, cuda)")
    q.add_argument("--precision", default="auto",
                   help="runtime methods: as drcn-run's --precision (auto: what drcn-run runs; openvino: the fastest "
                        "precision checked within 0.05 dB of fp32 and the per-pixel bound on this CPU)")
    _add_outputs(q)
    q.add_argument("--ensemble", type=ensemble_sizes, default=[1], metavar="N[,N]",
                   help="runtime methods: geometric self-ensemble sizes to compare (1, 2, 4, 8; e.g. 1,8); each "
                        "cell then shows the seconds it took beside the PSNR")
    q.add_argument("--per-image", action="store_true", help="print every image's scores too")
    q.set_defaults(run=run_quality)


def _add_recursions_parser(sub) -> None:
    r = sub.add_parser("recursions", help="PSNR of each of the D intermediate predictions and the ensemble",
                       description="Recursive supervision check: Y-PSNR of every intermediate prediction "
                                   "y_d = reconstruct(H_d) + x, d = 1..D, and of their learned ensemble.")
    r.add_argument("folders", nargs="*", metavar="DIR", help="folders of HR images; none = bundled samples")
    r.add_argument("--scale", type=scale, default=2.0, help="upscaling factor > 1 (default 2)")
    r.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    r.add_argument("--device", default="auto", help="PyTorch device (auto, cpu, cuda)")
    _add_outputs(r, md=False)
    r.set_defaults(run=run_recursions)


def _add_latency_parser(sub) -> None:
    from drcn.benchmarks.latency_report import FULL_REPORT, LatencyRequest

    quick, full = LatencyRequest(), FULL_REPORT
    lat = sub.add_parser("latency", help="latency per tile (quick); per frame, tiling overhead, pipeline (--full)",
                         description="Time each backend and precision per tile (median, p90, output Mpx/s): about "
                                     "a minute on a 2-core CPU. --full adds whole frames through exact tiling, the "
                                     "tiling overhead against its theoretical area ratio, and drcn-run's pipeline "
                                     "against compute alone (many minutes on a CPU).")
    lat.add_argument("--method", type=names, default=list(quick.methods),
                     help="backends: auto (what drcn-run picks here), onnxruntime, openvino, torch, tensorrt "
                          f"(comma-separated; default {','.join(quick.methods)})")
    lat.add_argument("--precision", type=names, default=list(quick.precisions),
                     help="auto (what drcn-run picks, shown resolved), fp32, fp16, bf16, int8 (comma-separated; "
                          "default auto)")
    lat.add_argument("--depth", type=positive_ints, metavar="D[,D]",
                     help="also the --depth variants with these recursions (e.g. 9,7,5; with --quality their PSNR)")
    lat.add_argument("--ensemble", type=ensemble_sizes, default=[1], metavar="N[,N]",
                     help="geometric self-ensemble sizes to time (1, 2, 4, 8; e.g. 1,2,4,8; with --quality their "
                          "PSNR, and points on the --plot)")
    lat.add_argument("--tile", type=positive_ints, default=list(quick.tiles), help="tile side(s) (default 256)")
    lat.add_argument("--batch", type=positive_int, default=quick.batch, help="tiles per call (default 4)")
    lat.add_argument("--full", action="store_true",
                     help="the long report: frames 1280x720 and 1920x1080, overhead on 640x360, an 8-frame pipeline "
                          "check, 10 repetitions")
    lat.add_argument("--repeat", type=positive_int,
                     help=f"timed repetitions (default {quick.repeat}; --full {full['repeat']})")
    lat.add_argument("--warmup", type=non_negative_int,
                     help=f"untimed warm-up calls (default {quick.warmup}; --full {full['warmup']})")
    lat.add_argument("--frames", type=frame_sizes, metavar="WxH[,WxH]",
                     help="output frame sizes to time through tiling, or 'none' (default none; --full 1280x720,"
                          "1920x1080)")
    lat.add_argument("--frame-repeat", type=positive_int, default=quick.frame_repeat,
                     help="timed repetitions per frame (default 3)")
    lat.add_argument("--overhead", type=frame_sizes, metavar="WxH",
                     help="frame for the tiled-vs-whole overhead check, or 'none' (default none; --full 640x360)")
    lat.add_argument("--pipeline", type=non_negative_int,
                     help="frames for the drcn-run pipeline efficiency check, 0 = skip (default 0; --full 8)")
    lat.add_argument("--ray", action="store_true",
                     help="with the pipeline check: also drcn-run --ray on a local Ray with 1 and 2 workers")
    lat.add_argument("--unfolded", action="store_true",
                     help="onnxruntime: also time the graph exported with --no-fold (the folding's speed-up)")
    lat.add_argument("--host", type=frame_sizes, metavar="WxH",
                     help="instead of backends: what drcn-run's host does per output frame of WxH besides the "
                          "network (host path vs device path, x2), and the PNG read/write of that frame")
    lat.add_argument("--quality", metavar="DIR", help="also measure x2 PSNR on DIR per variant (for the plot)")
    lat.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    lat.add_argument("--device", default="auto", help="PyTorch device (auto, cpu, cuda)")
    _add_outputs(lat)
    lat.add_argument("--plot", metavar="PNG", help="with --quality: PSNR-versus-latency plot")
    lat.set_defaults(run=run_latency)


def _add_sweep_parser(sub) -> None:
    s = sub.add_parser("sweep", help="PSNR and latency for --depth d = 1..D (recursion versus performance)")
    s.add_argument("folder", metavar="DIR", help="HR images for the PSNR (e.g. Set5)")
    s.add_argument("--scale", type=scale, default=2.0, help="upscaling factor (default 2)")
    s.add_argument("--tile", type=positive_int, default=256, help="tile side for the latency (default 256)")
    s.add_argument("--batch", type=positive_int, default=4, help="tiles per call (default 4)")
    s.add_argument("--repeat", type=positive_int, default=5, help="timed repetitions (default 5)")
    s.add_argument("--warmup", type=non_negative_int, default=1, help="untimed warm-up calls (default 1)")
    s.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    s.add_argument("--calib", nargs="+", metavar="DIR", help="training folders for the --depth refit")
    _add_outputs(s, md=False)
    s.add_argument("--plot", metavar="PNG", help="write the recursion-versus-performance figure")
    s.set_defaults(run=run_sweep)


def _add_paths_parser(sub) -> None:
    p = sub.add_parser("paths", help="frames/s of drcn-run's host path and device path, and of the network alone",
                       description="Run the same in-memory frames through drcn-run's pipeline on the host path "
                                   "and on the device path (same backend), and the network alone on the device "
                                   "path's inputs.")
    p.add_argument("--backend", default="auto", help="as drcn-run's --backend (default auto)")
    p.add_argument("--model", help="an .engine, .onnx or .safetensors file (default: as drcn-run)")
    p.add_argument("--device", default="auto", help="PyTorch device: auto, cpu, cuda")
    p.add_argument("--precision", default="auto", help="as drcn-run's --precision")
    p.add_argument("--size", type=frame_sizes, default=[(1080, 1920)], metavar="WxH",
                   help="output frame size (default 1920x1080)")
    p.add_argument("--frames", type=positive_int, default=8, help="frames per path (default 8)")
    p.add_argument("--tile", type=non_negative_int, default=256, help="as drcn-run's --tile (default 256)")
    p.add_argument("--batch", type=positive_int, default=4, help="tiles per call (default 4)")
    _add_outputs(p)
    p.set_defaults(run=run_paths)


def run_paths(args: argparse.Namespace) -> int:
    from drcn.benchmarks.path_bench import PathsRequest, measure_paths, paths_rows
    from drcn.runtime.backends import select
    from drcn.runtime.api import _model_arguments
    from drcn.runtime.upscaler import BackendRequest

    if len(args.size) != 1:
        raise DrcnError("--size: give one output frame size, e.g. 1920x1080")
    choice = select.choose(backend=args.backend, **_model_arguments(args.model))
    backend = BackendRequest(choice.backend, str(choice.model), tile=args.tile, batch=args.batch,
                             device=args.device, precision=args.precision)
    records = measure_paths(PathsRequest(backend, args.frames, args.size[0]), _log)
    headers, rows = paths_rows(records)
    _emit(args, headers, rows, records)
    return 0


def _add_framegraph_parser(sub) -> None:
    f = sub.add_parser("framegraph", help="the whole-frame graph against drcn-run's host path on HR folders",
                       description="Degrade each HR image (paper conventions), upscale the LR image with the "
                                   "whole-frame graph (ONNX Runtime) and with drcn-run's host path, and report "
                                   "differing pixels and both Y-PSNRs per scale.")
    f.add_argument("folders", nargs="+", metavar="DIR", help="folders of HR images (e.g. Set5 Set14)")
    f.add_argument("--onnx", help="the Y graph (default: the shipped model)")
    f.add_argument("--scale", type=scales, default=(2.0, 3.0, 4.0), help="scales (default 2,3,4)")
    _add_outputs(f)
    f.set_defaults(run=run_framegraph)


def run_framegraph(args: argparse.Namespace) -> int:
    from drcn import frame
    from drcn.benchmarks.frame_check import check_frame_graph, frame_rows
    from drcn.runtime.backends.select import shipped_onnx_path

    _datasets(args.folders)
    onnx = args.onnx or str(shipped_onnx_path())
    records = check_frame_graph(args.folders, onnx, tuple(frame.require_integer_scale(s) for s in args.scale), _log)
    headers, rows = frame_rows(records)
    _emit(args, headers, rows, records)
    return 0


def _crop(text: str) -> tuple[int, int, int]:
    try:
        x, y, size = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,SIZE, e.g. 100,40,128") from None
    if x < 0 or y < 0 or size < 1:
        raise argparse.ArgumentTypeError(f"'{text}': X and Y must be >= 0 and SIZE >= 1")
    return x, y, size


def _add_serve_parser(sub) -> None:
    from drcn.argtypes import positive_float

    v = sub.add_parser("serve", help="load on drcn-serve (requests/s, p50/p90/p99, errors) beside drcn-run",
                       description="Start drcn-serve on 127.0.0.1 (or use --url), send the same images from 1, 4 "
                                   "and 16 concurrent clients (asyncio, aiohttp), and measure drcn-run's frames/s "
                                   "and a warm drcn.upscale on those images in the same run.")
    v.add_argument("--url", help="a running drcn-serve (default: start one here with the model options below)")
    v.add_argument("--clients", type=positive_ints, default=[1, 4, 16], help="concurrent clients (default 1,4,16)")
    v.add_argument("--seconds", type=positive_float, default=20.0, help="seconds per client count (default 20)")
    v.add_argument("--size", type=frame_sizes, default=[(256, 256)], help="LR image size(s) WxH (default 256x256)")
    v.add_argument("--images", type=positive_int, default=4, help="distinct images (default 4)")
    v.add_argument("--onnx", help="as drcn-run's --onnx (default: the shipped model)")
    v.add_argument("--backend", default="auto", help="as drcn-run's --backend")
    v.add_argument("--precision", default="auto", help="as drcn-run's --precision")
    v.add_argument("--tile", type=non_negative_int, default=256, help="as drcn-run's --tile (default 256)")
    v.add_argument("--max-batch", type=positive_int,
                   help="the started drcn-serve's windows per backend call across requests (1: no batching; "
                        "default: drcn-serve's own, 8 on a GPU and 1 on a CPU)")
    v.add_argument("--scenario", choices=["load", "abandoned", "mixed", "memory"], default="load",
                   help="load (default): the client counts above; abandoned: --hang-ups clients send a --large "
                        "image at x4 and hang up after --hang-up-after s, then a small request is timed; mixed: "
                        "small requests timed beside one large request; memory: the last --clients count sends a "
                        "mix of 160x120, 480x270 and --large at x2-x4 for --seconds, and the replica's peak "
                        "resident memory is sampled")
    v.add_argument("--large", type=frame_sizes, default=[(720, 1280)], help="the large image WxH (default 1280x720)")
    v.add_argument("--hang-ups", type=positive_int, default=6, help="abandoned: clients that hang up (default 6)")
    v.add_argument("--hang-up-after", type=positive_float, default=1.0,
                   help="abandoned: seconds before they hang up (default 1)")
    v.add_argument("--server-arg", dest="server_args", action="append", default=[], metavar="ARG",
                   help="one more option for the drcn-serve started here (repeat: --server-arg=--memory-budget "
                        "--server-arg=3G)")
    _add_outputs(v)
    v.set_defaults(run=run_serve)


def _add_jobs_parser(sub) -> None:
    from drcn.argtypes import positive_float

    v = sub.add_parser("jobs", help="video jobs on drcn-serve against drcn-run: frames/s, a kill at half, images "
                                    "beside a job",
                       description="Make a clip (a pan over a sample photo), upscale it with drcn-run, then as a job "
                                   "of a drcn-serve started on 127.0.0.1: the job's frames/s, a job whose server is "
                                   "killed at half and started again, and 256x256 x2 image requests beside the job "
                                   "against idle.")
    v.add_argument("--onnx", help="as drcn-run's --onnx (default: the shipped model)")
    v.add_argument("--backend", default="auto", help="as drcn-run's --backend")
    v.add_argument("--precision", default="auto", help="as drcn-run's --precision")
    v.add_argument("--seconds", type=positive_float, default=10.0, help="the clip's length (default 10)")
    v.add_argument("--size", type=frame_sizes, default=[(180, 320)], help="the clip's WxH (default 320x180)")
    v.add_argument("--segment", type=positive_float, default=2.0, help="seconds per segment (default 2)")
    v.add_argument("--poll", type=positive_float, default=1.0,
                   help="seconds between the client's looks at a job's state (default 1, as the web page)")
    _add_outputs(v)
    v.set_defaults(run=run_jobs)


def run_jobs(args: argparse.Namespace) -> int:
    from drcn.benchmarks.job_bench import JobBenchRequest, job_rows, measure_jobs

    model_args = ["--backend", args.backend, "--precision", args.precision]
    if args.onnx:
        model_args += ["--onnx", str(Path(args.onnx).resolve())]
    record = measure_jobs(JobBenchRequest(tuple(model_args), args.seconds, args.size[0], segment=args.segment,
                                           poll_s=args.poll), _log)
    headers, rows = job_rows(record)
    _emit(args, headers, rows, record)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from drcn.benchmarks.serve_bench import ServeBenchRequest, measure_serve, serve_rows

    model_args = ["--backend", args.backend, "--precision", args.precision, "--tile", str(args.tile)]
    if args.onnx:
        model_args += ["--onnx", str(Path(args.onnx).resolve())]
    if not args.size:
        raise DrcnError("--size: give at least one image size, e.g. 256x256")
    sizes = tuple(tuple(s) for s in args.size)
    if args.scenario != "load":
        from drcn.benchmarks.serve_bench import ScenarioRequest, measure_scenario, scenario_rows

        if not args.large:
            raise DrcnError("--large: give one image size, e.g. 1280x720")
        clients = args.clients[-1] if args.scenario == "memory" else args.hang_ups
        record = measure_scenario(ScenarioRequest(tuple(model_args), args.url, args.scenario, args.large[0],
                                                  4, (120, 160), clients, args.hang_up_after,
                                                  (*_max_batch(args), *args.server_args),
                                                  args.seconds), _log)
        headers, rows = scenario_rows(record)
        _emit(args, headers, rows, record)
        return 0
    request = ServeBenchRequest(tuple(model_args), args.url, sizes, args.images, tuple(args.clients), args.seconds,
                                server_args=_max_batch(args))
    result = measure_serve(request, _log)
    headers, rows = serve_rows(result)
    _emit(args, headers, rows, result)
    return 0


def _add_compare_parser(sub) -> None:
    c = sub.add_parser("compare", help="one PNG of a crop side by side: nearest, bicubic, drcn (and the HR original)",
                       description="Upscale IMAGE (a low-resolution image) and write the same crop of nearest, "
                                   "MATLAB bicubic and drcn side by side, labelled; with --hr also the original, "
                                   "with each method's Y-PSNR against it.")
    c.add_argument("image", metavar="IMAGE", help="the low-resolution image")
    c.add_argument("--hr", metavar="HR", help="the high-resolution original (IMAGE x scale in size)")
    c.add_argument("-o", "--output", help="the PNG to write (default: IMAGE_compare.png beside it)")
    c.add_argument("--scale", type=scale, default=2.0, help="upscaling factor > 1 (default 2)")
    c.add_argument("--crop", type=_crop, metavar="X,Y,SIZE", help="the square to show, in output pixels "
                                                                  "(default: the most detailed one)")
    c.add_argument("--size", type=positive_int, default=128, help="crop side when chosen automatically (default 128)")
    c.add_argument("--zoom", type=positive_int, default=2, help="nearest-neighbour enlargement of the panels")
    c.add_argument("--model", help="an .engine, .onnx or .safetensors file (default: as drcn-run)")
    c.add_argument("--backend", default="auto", help="as drcn-run's --backend")
    c.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from drcn.atomic import check_destination
    from drcn.benchmarks.compare import CompareRequest, compare

    image = Path(args.image)
    if not image.is_file():
        raise DrcnError(f"{image}: no such image")
    if args.hr and not Path(args.hr).is_file():
        raise DrcnError(f"--hr {args.hr}: no such image")
    output = Path(args.output) if args.output else image.with_name(f"{image.stem}_compare.png")
    check_destination(output, "-o")
    shown = compare(CompareRequest(image, output, args.scale, Path(args.hr) if args.hr else None, args.crop,
                                   args.size, args.zoom, args.model, args.backend), _log)
    x, y, size = shown["crop"]
    scores = "".join(f"; {name} {value:.2f} dB" for name, value in shown["psnr"].items())
    print(f"{PROG}: wrote {output}: {', '.join(shown['panels'])}, crop {size}x{size} at ({x}, {y}){scores}")
    return 0


def _add_figure_parser(sub) -> None:
    g = sub.add_parser("figure", help="a figure for the docs, drawn from the code's own plans or measured data",
                       description="Draw one PNG: tiles (the windows a frame is cut into), deviation (each "
                                   "precision's per-pixel distance from fp32 on one image, map and histogram), "
                                   "segments (a video's keyframes and the segments drcn-run cuts it into), jobs "
                                   "(a drcn-bench jobs --json record), or paths (the host and device paths with "
                                   "their measured host work and frames/s).")
    kinds = g.add_subparsers(dest="kind", required=True, metavar="KIND")
    t = kinds.add_parser("tiles", help="the tiles and windows of one frame")
    t.add_argument("--size", type=frame_sizes, default=[(360, 640)], help="the output frame's WxH (default 640x360)")
    t.add_argument("--tile", type=positive_int, default=256, help="as drcn-run's --tile (default 256)")
    t.add_argument("--halo", type=positive_int, default=13, help="the model's halo (default 13, the shipped model's)")
    d = kinds.add_parser("deviation", help="per-pixel distance from fp32 of each precision on one image")
    d.add_argument("image", metavar="IMAGE", help="a high-resolution image (shrunk by --scale first)")
    d.add_argument("--precision", default="bf16,int8", help="precisions to draw against fp32 (default bf16,int8)")
    d.add_argument("--scale", type=scale, default=2.0, help="upscaling factor > 1 (default 2)")
    d.add_argument("--onnx", help="the model (default: the shipped model)")
    s = kinds.add_parser("segments", help="a video's keyframes and segments")
    s.add_argument("video", metavar="VIDEO")
    s.add_argument("--segment", type=positive_float, default=10.0, help="as drcn-run's --segment (default 10)")
    j = kinds.add_parser("jobs", help="a drcn-bench jobs record")
    j.add_argument("record", metavar="JSON", help="what drcn-bench jobs --json wrote")
    h = kinds.add_parser("paths", help="the host and device paths, with their measured host work and frames/s")
    h.add_argument("host", metavar="HOST_JSON", help="what drcn-bench latency --host ... --json wrote")
    h.add_argument("paths", metavar="PATHS_JSON", help="what drcn-bench paths --json wrote")
    for kind in (t, d, s, j, h):
        kind.add_argument("-o", "--output", required=True, help="the PNG to write")
    g.set_defaults(run=run_figure)


def run_figure(args: argparse.Namespace) -> int:
    from drcn.atomic import check_destination
    from drcn.benchmarks import figures

    output = Path(args.output)
    check_destination(output, "-o")
    if args.kind == "tiles":
        shown = figures.tiles(figures.TilesRequest(output, tuple(args.size[0]), args.tile, args.halo))
    elif args.kind == "deviation":
        image = Path(args.image)
        if not image.is_file():
            raise DrcnError(f"{image}: no such image")
        precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
        shown = figures.deviation(figures.DeviationRequest(image, output, precisions, args.scale, args.onnx))
    elif args.kind == "segments":
        if not Path(args.video).is_file():
            raise DrcnError(f"{args.video}: no such video")
        shown = figures.segments(figures.SegmentsRequest(Path(args.video), output, args.segment))
    elif args.kind == "paths":
        for given in (args.host, args.paths):
            if not Path(given).is_file():
                raise DrcnError(f"{given}: no such file")
        try:
            shown = figures.paths(figures.PathsRequest(Path(args.host), Path(args.paths), output))
        except (KeyError, ValueError, TypeError) as exc:
            raise DrcnError(f"{args.host}, {args.paths}: not drcn-bench latency --host and paths records "
                            f"({type(exc).__name__}: {exc})") from None
    else:
        if not Path(args.record).is_file():
            raise DrcnError(f"{args.record}: no such file")
        try:
            shown = figures.jobs(figures.JobsRequest(Path(args.record), output))
        except (KeyError, ValueError) as exc:
            raise DrcnError(f"{args.record}: not a drcn-bench jobs record ({type(exc).__name__}: {exc})") from None
    print(f"{PROG}: wrote {output}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    return 0


def _add_temporal_parser(sub) -> None:
    from drcn.benchmarks.temporal import TemporalRequest

    d = TemporalRequest()
    t = sub.add_parser("temporal", help="frame-to-frame change of each precision's output on a panning clip",
                       description="A clip made here (a static picture; a band of lit dots on a dark ground moving "
                                   "one output pixel per frame, a sub-pixel step in the input) through "
                                   "drcn.Upscaler once per precision: the largest "
                                   "frame-to-frame change where the input is static, and in the band after "
                                   "following the motion (what a viewer sees as sparkle).")
    t.add_argument("--precision", type=names, default=list(d.precisions),
                   help="precisions to compare, e.g. auto,fp32,int8,int8/f32,bf16 (default auto,fp32)")
    t.add_argument("--backend", default=d.backend, help=f"backend (default {d.backend})")
    t.add_argument("--model", help="an .onnx, .engine or .safetensors model (default: the shipped model)")
    t.add_argument("--scale", type=scale, default=d.scale, help=f"upscaling factor (default {d.scale:g})")
    t.add_argument("--size", type=frame_sizes, default=[d.size], metavar="WxH",
                   help=f"low-resolution frame size (default {d.size[1]}x{d.size[0]})")
    t.add_argument("--frames", type=positive_int, default=d.frames, help=f"frames (default {d.frames})")
    t.add_argument("--tile", type=non_negative_int, default=d.tile, help=f"tile side (default {d.tile})")
    _add_outputs(t)
    t.set_defaults(run=run_temporal)


def run_temporal(args: argparse.Namespace) -> int:
    from drcn.benchmarks.temporal import TemporalRequest, measure_temporal

    if len(args.size) != 1:
        raise DrcnError("--size: one frame size, e.g. 160x90")
    if args.frames < 2:
        raise DrcnError("--frames: at least 2 (the change is measured between consecutive frames)")
    request = TemporalRequest(tuple(args.precision), args.model, args.backend, args.scale, tuple(args.size[0]),
                              args.frames, args.tile)
    results = measure_temporal(request, _log)
    headers = ["precision", "static: max", "static: > 1 level", "moving: max", "moving: p99.99", "moving: > 4",
               "band vs fp32: max", "band vs fp32: > 4"]
    rows = [[p, r["static"]["max"], f"{r['static']['over1_pct']:.4f}%", r["moving"]["max"], r["moving"]["p99.99"],
             f"{r['moving']['over4_pct']:.3f}%", r.get("vs_fp32", {}).get("max", "-"),
             f"{r['vs_fp32']['over4_pct']:.4f}%" if "vs_fp32" in r else "-"] for p, r in results.items()]
    print(f"frame-to-frame change of the 8-bit output, {args.frames} frames of {request.size[1]}x{request.size[0]} "
          f"x{args.scale:g} (moving: after following the one-pixel pan)",
          file=sys.stderr if args.json == "-" else sys.stdout)
    _emit(args, headers, rows, results)
    return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Quality and speed measurements for DRCN.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_quality_parser, _add_recursions_parser, _add_latency_parser, _add_sweep_parser,
                _add_compare_parser, _add_paths_parser, _add_framegraph_parser, _add_serve_parser, _add_jobs_parser,
                _add_temporal_parser, _add_figure_parser):
        add(sub)
    return parser


def _emit(args: argparse.Namespace, headers: list[str], rows: list[list], records) -> None:
    """The table on stdout (stderr when the JSON goes to stdout), and the --md and --json files where asked, the
    Markdown opening with where it was measured (:mod:`drcn.benchmarks.machine`: CPU, ISA level, cores, memory,
    versions, date, command); every absolute path in them reduced to its file name (a result names a model, not the
    folders of who measured it)."""
    from drcn.benchmarks import tables

    rows, records = without_paths_in(rows), without_paths_in(records)

    print(tables.plain(headers, rows), end="", file=sys.stderr if args.json == "-" else sys.stdout)
    if args.md:
        _write_markdown(args, tables.markdown(headers, rows))
    if args.json:
        write_json(args.json, records)      # the records as they are: programs read them; the table says where


def _write_markdown(args: argparse.Namespace, markdown: str) -> None:
    """The --md file: the machine it was measured on and the command (:mod:`drcn.benchmarks.machine`), then the
    tables."""
    from drcn.benchmarks import machine

    command = machine.command_line(getattr(args, "argv", sys.argv[1:]))
    atomic.write_text(Path(args.md), machine.header(machine.facts(), command) + markdown)


_ABSOLUTE = re.compile(r"(?<![\w.:/])/((?:[^\s/()'\"]+/)+)([^\s/()'\"]+)")


def _file_name(match: re.Match) -> str:
    # Only a path under a folder this machine has (/tmp, /home, ...): "POST /v1/jobs" is a route, not a file.
    top = match.group(1).split("/", 1)[0]
    return match.group(2) if os.path.isdir(f"/{top}") else match.group(0)


def without_paths_in(data):
    """``data`` (nested lists, tuples, dicts) with every absolute path of this machine in its strings reduced to its
    file name."""
    if isinstance(data, str):
        return _ABSOLUTE.sub(_file_name, data)
    if isinstance(data, dict):
        return {key: without_paths_in(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(without_paths_in(value) for value in data)
    return data


def write_json(target: str, data) -> None:
    import json

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    atomic.write_text(Path(target), text)


def _datasets(folders: list[str]):
    from drcn import evaluation

    # Resolve every folder before any (possibly slow) model loads, so a typo fails at once.
    datasets = [evaluation.folder_dataset(f) for f in folders] or [evaluation.sample_dataset()]
    names_ = [d.name for d in datasets]
    if len(set(names_)) != len(names_):
        raise DrcnError(f"two folders share a name ({', '.join(names_)}): results are keyed by folder name")
    return datasets


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_quality(args: argparse.Namespace) -> int:
    from drcn.benchmarks import methods, tables
    from drcn.benchmarks.quality_report import QualityRequest, measure_quality

    datasets = _datasets(args.folders)
    options = methods.MethodOptions(weights=args.weights, device=args.device, onnx=args.onnx, engine=args.engine,
                                    tile=args.tile, batch=args.batch, precision=args.precision)
    request = QualityRequest(tuple(datasets), tuple(args.method), tuple(args.scale), options, tuple(args.ensemble))
    out = sys.stderr if args.json == "-" else sys.stdout

    def on_image(method, factor, dataset, s):
        if args.per_image:
            print(f"  {method} x{factor:g} {dataset}/{s.name}: {s.psnr:.3f} dB {s.ssim:.4f}", file=out)

    results = measure_quality(request, on_image)
    reference = "torch" if "torch" in results and len(results) > 1 else None
    headers, rows = tables.quality_rows(results, reference, timed=args.ensemble != [1])
    print("Y-PSNR (dB) / SSIM, border = scale pixels shaved; images: "
          + ", ".join(f"{d.name} {len(d.images)}" for d in datasets), file=out)
    print(tables.plain(headers, rows), end="", file=out)
    markdown = tables.markdown(headers, rows)
    if reference:
        pixel_headers, pixel_rows = tables.pixel_rows(results, reference)
        if pixel_rows:
            title = (f"Per-pixel deviation of the 8-bit Y output from {reference} (the same model in fp32): levels "
                     "(max, 99.99th percentile) and share of values off")
            print(title, file=out)
            print(tables.plain(pixel_headers, pixel_rows), end="", file=out)
            markdown += f"\n{title}:\n\n" + tables.markdown(pixel_headers, pixel_rows)
    if args.md:
        _write_markdown(args, markdown)
    if args.json:
        single = len(results) == 1 and len(args.scale) == 1
        write_json(args.json, next(iter(next(iter(results.values())).values())) if single else results)
    return 0


def run_recursions(args: argparse.Namespace) -> int:
    from drcn.optional import require

    require("torch", "drcn-bench recursions", "pip install 'drcn[torch]'")
    from drcn.benchmarks.recursions import intermediate_psnr
    from drcn.devices import torch_device
    from drcn.weights import load_model

    datasets = _datasets(args.folders)
    device = torch_device(args.device)
    model = load_model(args.weights, device=device)
    out = sys.stderr if args.json == "-" else sys.stdout
    results = {}
    for dataset in datasets:
        res = intermediate_psnr(model, dataset, args.scale, device)
        results[dataset.name] = res
        print(f"{dataset.name} x{args.scale:g}: Y-PSNR (dB) of each recursion's prediction", file=out)
        for d, value in enumerate(res["intermediate"], start=1):
            print(f"  d = {d:>2}  {value:8.3f}", file=out)
        best = max(res["intermediate"])
        print(f"  ensemble {res['ensemble']:8.3f}  ({res['ensemble'] - best:+.3f} vs the best single d)", file=out)
    if args.json:
        write_json(args.json, results)
    return 0


def latency_request(args: argparse.Namespace):
    """The typed request for ``drcn-bench latency``: quick defaults, --full's where asked, explicit options win."""
    from drcn.benchmarks.latency_report import FULL_REPORT, LatencyRequest
    from drcn.runtime.backends.table import BACKENDS

    for method in args.method:
        if method != "auto" and method not in BACKENDS:
            raise DrcnError(f"--method: unknown backend '{method}' (choose from {', '.join(BACKENDS)})")
    values = dict(FULL_REPORT) if args.full else {}
    values.update({k: v for k, v in (("repeat", args.repeat), ("warmup", args.warmup), ("pipeline", args.pipeline))
                   if v is not None})
    if args.frames is not None:
        values["frames"] = tuple(args.frames)
    if args.overhead is not None:  # [] is 'none'
        values["overhead"] = args.overhead[0] if args.overhead else None
    if args.ray and not values.get("pipeline"):
        values["pipeline"] = 8  # the Ray path is measured on the pipeline's frames
    if args.plot and not args.quality:
        raise DrcnError("--plot draws PSNR against latency: give --quality DIR too")
    return dataclasses.replace(
        LatencyRequest(), methods=tuple(args.method), precisions=tuple(args.precision), tiles=tuple(args.tile),
        batch=args.batch, frame_repeat=args.frame_repeat, unfolded=args.unfolded, quality=args.quality, ray=args.ray,
        weights=args.weights, device=args.device, depths=tuple(args.depth or ()),
        ensembles=tuple(args.ensemble), **values)


def run_latency(args: argparse.Namespace) -> int:
    from drcn.benchmarks.latency_report import latency_rows, measure_latency

    if args.host is not None:
        return run_host(args)
    request = latency_request(args)
    if request.quality:
        _datasets([request.quality])
    if not args.full:
        _log(f"{PROG} latency: quick report (per tile only); --full adds frames, tiling overhead and the pipeline")
    records = measure_latency(request, _log)
    headers, rows = latency_rows(records)
    _emit(args, headers, rows, records)
    if args.plot:
        from drcn.benchmarks.plots import psnr_latency_figure

        psnr_latency_figure(records, Path(args.plot))
    return 0


def run_host(args: argparse.Namespace) -> int:
    from drcn.benchmarks.host_bench import host_rows, measure_host

    if len(args.host) != 1:
        raise DrcnError("--host: give one output frame size, e.g. 1920x1080")
    height, width = args.host[0]
    if height % 2 or width % 2:
        raise DrcnError(f"--host {width}x{height}: the x2 output frame needs even sides")
    _log(f"{PROG} latency: host work per {width}x{height} frame, host path and device path (x2, tile "
         f"{args.tile[0]})")
    records = measure_host((height, width), 2, args.tile[0], repeat=args.repeat or 3)
    headers, rows = host_rows(records)
    _emit(args, headers, rows, records)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from drcn.benchmarks.plots import recursion_figure
    from drcn.benchmarks.sweep import recursion_sweep

    _datasets([args.folder])
    records = recursion_sweep(args.folder, args.scale, args.tile, args.batch, args.repeat, args.warmup,
                              args.weights, args.calib, progress=_log)
    if args.json:
        write_json(args.json, records)
    if args.plot:
        recursion_figure(records, Path(args.plot))
    return 0


def _max_batch(args) -> tuple[str, ...]:
    return ("--max-batch", str(args.max_batch)) if args.max_batch else ()


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
