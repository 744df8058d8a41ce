"""``drcn-bench``: measure what the toolkit produces.

    drcn-bench quality [DIR ...] --scale 2,3,4 --method bicubic,torch,onnxruntime [--json FILE] [--md FILE]
    drcn-bench latency --method onnxruntime,torch --tile 256 [--json FILE] [--md FILE]
    drcn-bench sweep DIR --scale 2                      # PSNR and latency for --depth d = 1..D
    drcn-bench recursions [DIR ...] --scale 2           # PSNR of each intermediate prediction
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drcn import atomic
from drcn.argtypes import scale, scales
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-bench"


def scale_list(text: str) -> list[float]:
    return list(scales(text))


def name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"values must be 0 or more, got {text}")
    return values


def frame_list(text: str) -> list[tuple[int, int]]:
    if text.lower() == "none":
        return []
    try:
        return [tuple(int(v) for v in t.lower().split("x"))[::-1] for t in text.split(",")]  # (H, W)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WxH[,WxH...], e.g. 1280x720") from None


def build_parser() -> ArgumentParser:
    from drcn.benchmarks import methods

    parser = ArgumentParser(prog=PROG, description="Quality and speed measurements for DRCN.")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quality", help="Y-PSNR and SSIM on HR image folders (paper conventions)",
                       description="Evaluate methods on folders of HR images: each image is mod-cropped, "
                                   "shrunk and re-enlarged with MATLAB bicubic, super-resolved, and scored on Y "
                                   "with a border of `scale` pixels shaved.")
    q.add_argument("folders", nargs="*", metavar="DIR",
                   help="folders of HR images; none = scikit-image's bundled sample photos")
    q.add_argument("--scale", type=scale_list, default=[2.0], help="factor(s) > 1, e.g. 2 or 2,3,4 (default 2)")
    q.add_argument("--method", type=name_list, default=["bicubic"],
                   help=f"one or more of: {', '.join(methods.available())} (comma-separated)")
    q.add_argument("--weights", help="safetensors weights for --method torch (default: the shipped model)")
    q.add_argument("--onnx", help="ONNX file for --method onnxruntime (default: model.onnx here, else shipped)")
    q.add_argument("--engine", help="TensorRT engine for --method tensorrt (default: model.engine here)")
    q.add_argument("--tile", type=int, default=0, help="runtime methods: tile side, 0 = whole images (default)")
    q.add_argument("--device", default="auto", help="PyTorch device for --method torch (auto, cpu, cuda)")
    q.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    q.add_argument("--md", metavar="FILE", help="also write the table as Markdown")
    q.add_argument("--per-image", action="store_true", help="print every image's scores too")
    q.set_defaults(run=run_quality)

    r = sub.add_parser("recursions", help="PSNR of each of the D intermediate predictions and the ensemble",
                       description="Recursive supervision check: Y-PSNR of every intermediate prediction "
                                   "y_d = reconstruct(H_d) + x, d = 1..D, and of their learned ensemble.")
    r.add_argument("folders", nargs="*", metavar="DIR", help="folders of HR images; none = bundled samples")
    r.add_argument("--scale", type=scale, default=2.0, help="upscaling factor > 1 (default 2)")
    r.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    r.add_argument("--device", default="auto", help="PyTorch device (auto, cpu, cuda)")
    r.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    r.set_defaults(run=run_recursions)

    lat = sub.add_parser("latency", help="latency per tile and per frame, tiling overhead, pipeline efficiency",
                         description="Time each backend and precision: per tile (median, p90, output Mpx/s), "
                                     "per frame through exact tiling, the tiling overhead against its "
                                     "theoretical area ratio, and drcn-run's pipeline against compute alone.")
    lat.add_argument("--method", type=name_list, default=["onnxruntime", "torch"],
                     help="backends: onnxruntime, torch, tensorrt (comma-separated)")
    lat.add_argument("--precision", type=name_list, default=["fp32"], help="fp32, fp16, bf16 (comma-separated)")
    lat.add_argument("--tile", type=int_list, default=[256], help="tile side(s) (default 256)")
    lat.add_argument("--batch", type=int, default=4, help="tiles per call (default 4)")
    lat.add_argument("--repeat", type=int, default=10, help="timed repetitions (default 10)")
    lat.add_argument("--warmup", type=int, default=2, help="untimed warm-up calls (default 2)")
    lat.add_argument("--frames", type=frame_list, default=frame_list("1280x720,1920x1080"),
                     help="output frame sizes to time, WxH list or 'none' (default 1280x720,1920x1080)")
    lat.add_argument("--frame-repeat", type=int, default=3, help="timed repetitions per frame (default 3)")
    lat.add_argument("--overhead", type=frame_list, default=frame_list("640x360"),
                     help="frame for the tiled-vs-whole overhead check, WxH or 'none' (default 640x360)")
    lat.add_argument("--pipeline", type=int, default=8,
                     help="frames for the drcn-run pipeline efficiency check, 0 = skip (default 8)")
    lat.add_argument("--unfolded", action="store_true",
                     help="onnxruntime: also time the graph exported with --no-fold (the folding's speed-up)")
    lat.add_argument("--quality", metavar="DIR", help="also measure x2 PSNR on DIR per variant (for the plot)")
    lat.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    lat.add_argument("--device", default="auto", help="PyTorch device (auto, cpu, cuda)")
    lat.add_argument("--json", metavar="FILE", help="write the records as JSON ('-' = stdout)")
    lat.add_argument("--md", metavar="FILE", help="write the table as Markdown")
    lat.add_argument("--plot", metavar="PNG", help="with --quality: PSNR-versus-latency plot")
    lat.set_defaults(run=run_latency)

    s = sub.add_parser("sweep", help="PSNR and latency for --depth d = 1..D (recursion versus performance)")
    s.add_argument("folder", metavar="DIR", help="HR images for the PSNR (e.g. Set5)")
    s.add_argument("--scale", type=scale, default=2.0, help="upscaling factor (default 2)")
    s.add_argument("--tile", type=int, default=256, help="tile side for the latency (default 256)")
    s.add_argument("--batch", type=int, default=4, help="tiles per call (default 4)")
    s.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    s.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls (default 1)")
    s.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    s.add_argument("--calib", nargs="+", metavar="DIR", help="training folders for the --depth refit")
    s.add_argument("--json", metavar="FILE", help="write the records as JSON ('-' = stdout)")
    s.add_argument("--plot", metavar="PNG", help="write the recursion-versus-performance figure")
    s.set_defaults(run=run_sweep)
    return parser


def write_json(target: str, data) -> None:
    import json

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    atomic.write_text(Path(target), text)


def _datasets(folders: list[str]):
    from drcn.benchmarks import quality

    # Resolve every folder before any (possibly slow) model loads, so a typo fails at once.
    datasets = [quality.folder_dataset(f) for f in folders] or [quality.sample_dataset()]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DrcnError(f"two folders share a name ({', '.join(names)}): results are keyed by folder name")
    return datasets


def run_quality(args: argparse.Namespace) -> int:
    from drcn.benchmarks import methods, quality, tables

    datasets = _datasets(args.folders)
    names = list(dict.fromkeys(args.method))
    for name in names:
        if name not in methods.available():
            raise DrcnError(f"--method: unknown method '{name}' (choose from {', '.join(methods.available())})")
    runtime = [n for n in names if n not in ("bicubic", "torch")]
    if runtime and "torch" not in names and _has_torch():
        names.append("torch")  # every backend is reported against the PyTorch reference
    options = methods.MethodOptions(weights=args.weights, device=args.device, onnx=args.onnx, engine=args.engine,
                                    tile=args.tile)
    out = sys.stderr if args.json == "-" else sys.stdout
    results: dict = {}
    for name in names:
        method = methods.create(name, options)
        results[name] = {}
        for factor in args.scale:
            results[name][f"x{factor:g}"] = {}
            for dataset in datasets:
                scores = quality.evaluate(method, dataset, factor)
                if args.per_image:
                    for s in scores:
                        print(f"  {name} x{factor:g} {dataset.name}/{s.name}: {s.psnr:.3f} dB {s.ssim:.4f}", file=out)
                results[name][f"x{factor:g}"][dataset.name] = quality.summarise(scores)
    reference = "torch" if "torch" in names and len(names) > 1 else None
    headers, rows = tables.quality_rows(results, reference)
    print("Y-PSNR (dB) / SSIM, border = scale pixels shaved; images: "
          + ", ".join(f"{d.name} {len(d.images)}" for d in datasets), file=out)
    print(tables.plain(headers, rows), end="", file=out)
    if args.md:
        atomic.write_text(Path(args.md), tables.markdown(headers, rows))
    if args.json:
        single = len(names) == 1 and len(args.scale) == 1
        write_json(args.json, next(iter(next(iter(results.values())).values())) if single else results)
    return 0


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run_recursions(args: argparse.Namespace) -> int:
    from drcn.errors import require

    require("torch", "drcn-bench recursions", "pip install 'drcn[torch]'")
    from drcn.runtime.torch_backend import torch_device
    from drcn.benchmarks.recursions import intermediate_psnr
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


def run_latency(args: argparse.Namespace) -> int:
    from drcn.benchmarks.latency_report import measure_all

    return measure_all(args)


def run_sweep(args: argparse.Namespace) -> int:
    from drcn.benchmarks.plots import recursion_figure
    from drcn.benchmarks.sweep import recursion_sweep

    _datasets([args.folder])
    records = recursion_sweep(args.folder, args.scale, args.tile, args.batch, args.repeat, args.warmup,
                              args.weights, args.calib, progress=lambda m: print(m, flush=True))
    if args.json:
        write_json(args.json, records)
    if args.plot:
        recursion_figure(records, Path(args.plot))
    return 0


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
