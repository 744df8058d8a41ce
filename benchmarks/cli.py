"""``drcn-bench``: measure what the toolkit produces.

    drcn-bench quality [DIR ...] --scale 2 --method bicubic [--json FILE]
    drcn-bench recursions [DIR ...] --scale 2 [--weights FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drcn import atomic
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-bench"


def positive_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 1.0:
        raise argparse.ArgumentTypeError(f"scale must be greater than 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from drcn.benchmarks import methods

    parser = ArgumentParser(prog=PROG, description="Quality and speed measurements for DRCN.")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quality", help="Y-PSNR and SSIM on HR image folders (paper conventions)",
                       description="Evaluate a method on folders of HR images: each image is mod-cropped, "
                                   "shrunk and re-enlarged with MATLAB bicubic, super-resolved, and scored on Y "
                                   "with a border of `scale` pixels shaved.")
    q.add_argument("folders", nargs="*", metavar="DIR",
                   help="folders of HR images; none = scikit-image's bundled sample photos")
    q.add_argument("--scale", type=positive_scale, default=2.0, help="upscaling factor > 1 (default 2)")
    q.add_argument("--method", default="bicubic", help=f"one of: {', '.join(methods.available())}")
    q.add_argument("--weights", help="safetensors weights for model methods (default: the shipped model)")
    q.add_argument("--onnx", help="ONNX file for --method onnxruntime (default: model.onnx here, else shipped)")
    q.add_argument("--engine", help="TensorRT engine for --method tensorrt (default: model.engine here)")
    q.add_argument("--tile", type=int, default=0, help="runtime methods: tile side, 0 = whole images (default)")
    q.add_argument("--device", default="auto", help="PyTorch device for --method torch (auto, cpu, cuda)")
    q.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    q.add_argument("--per-image", action="store_true", help="print every image's scores too")
    q.set_defaults(run=run_quality)

    r = sub.add_parser("recursions", help="PSNR of each of the D intermediate predictions and the ensemble",
                       description="Recursive supervision check: Y-PSNR of every intermediate prediction "
                                   "y_d = reconstruct(H_d) + x, d = 1..D, and of their learned ensemble.")
    r.add_argument("folders", nargs="*", metavar="DIR", help="folders of HR images; none = bundled samples")
    r.add_argument("--scale", type=positive_scale, default=2.0, help="upscaling factor > 1 (default 2)")
    r.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    r.add_argument("--device", default="auto", help="PyTorch device (auto, cpu, cuda)")
    r.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    r.set_defaults(run=run_recursions)
    return parser


def write_json(target: str, data) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    path = Path(target)
    if path.is_dir():
        raise DrcnError(f"--json {target}: is a folder")
    atomic.write_text(path, text)


def run_quality(args: argparse.Namespace) -> int:
    from drcn.benchmarks import methods, quality

    datasets = _datasets(args.folders)
    method = methods.create(args.method, methods.MethodOptions(weights=args.weights, device=args.device,
                                                               onnx=args.onnx, engine=args.engine, tile=args.tile))

    results = {}
    # Tables go to stdout unless JSON does; then they go to stderr so that `--json -` stays parseable.
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"method {method.name}, scale x{args.scale:g}, Y channel, border {quality.shave_border(args.scale)} "
          f"px shaved", file=out)
    print(f"{'dataset':<20} {'images':>6} {'PSNR (dB)':>10} {'SSIM':>7}", file=out)
    for dataset in datasets:
        scores = quality.evaluate(method, dataset, args.scale)
        if args.per_image:
            for s in scores:
                print(f"  {s.name:<18} {'':>6} {s.psnr:>10.3f} {s.ssim:>7.4f}", file=out)
        summary = quality.summarise(scores)
        results[dataset.name] = summary
        print(f"{dataset.name:<20} {summary['images']:>6} {summary['psnr']:>10.3f} {summary['ssim']:>7.4f}",
              file=out, flush=True)
    if args.json:
        write_json(args.json, results)
    return 0


def _datasets(folders: list[str]):
    from drcn.benchmarks import quality

    # Resolve every folder before any (possibly slow) model loads, so a typo fails at once.
    datasets = [quality.folder_dataset(f) for f in folders] or [quality.sample_dataset()]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DrcnError(f"two folders share a name ({', '.join(names)}): results are keyed by folder name")
    return datasets


def run_recursions(args: argparse.Namespace) -> int:
    from drcn.errors import require

    require("torch", "drcn-bench recursions", "pip install 'drcn[torch]'")
    from drcn.benchmarks.methods import torch_device
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


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
