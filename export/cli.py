"""``drcn-export``: the trained model as one verified ONNX file, recursion unrolled, weights tied.

    drcn-export --onnx model.onnx                       # the shipped model, fp32, dynamic N/H/W
    drcn-export --onnx model_fp16.onnx --fp16           # FP16 weights and arithmetic, float32 I/O
    drcn-export --onnx fast.onnx --depth 5 --calib ../shared/datasets/T91
    drcn-export --triton models/ --triton-tile 256          # a Triton model repository: models/drcn/...
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from drcn.argtypes import dims, opset, positive_int
from drcn.atomic import check_destination
from drcn.errors import ArgumentParser, DrcnError, cli_entry
from drcn.optional import require

PROG = "drcn-export"


def build_parser() -> ArgumentParser:
    from drcn.export.exporter import DEFAULT_OPSET

    p = ArgumentParser(prog=PROG, description="Export DRCN to ONNX with the recursion unrolled and its weights "
                                              "tied; the written graph is checked and verified against PyTorch.")
    p.add_argument("--onnx", metavar="FILE", help="output .onnx file (one self-contained file)")
    t = p.add_argument_group("Triton Inference Server model repository")
    t.add_argument("--triton", metavar="DIR", help="write DIR/<name>/config.pbtxt and DIR/<name>/1/model.onnx")
    t.add_argument("--triton-name", default="drcn", help="model name (default drcn)")
    t.add_argument("--triton-tile", type=positive_int, default=256,
                   help="output tile the clients will use; the served window is tile + 2 x halo (default 256)")
    t.add_argument("--triton-max-batch", type=positive_int, default=8, help="windows per batch (default 8)")
    t.add_argument("--triton-instances", type=positive_int, default=1, help="instances per device (default 1)")
    t.add_argument("--triton-device", choices=["gpu", "cpu"], default="gpu",
                   help="gpu: KIND_GPU with the TensorRT accelerator (FP16 unless --triton-fp32); cpu: KIND_CPU")
    t.add_argument("--triton-fp32", action="store_true", help="the TensorRT accelerator in FP32")
    p.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    p.add_argument("--opset", type=opset, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--fp16", action="store_true",
                   help="FP16 weights and arithmetic (TensorRT 11 strongly typed, GPU ONNX Runtime); I/O stays "
                        "float32")
    p.add_argument("--depth", type=positive_int, help="keep only the first d recursions (ensemble refit)")
    p.add_argument("--calib", nargs="+", metavar="DIR",
                   help="training-image folders for --depth and --fp16 checks (default: bundled sample photos)")
    p.add_argument("--shape", type=dims("NxHxW", "4x296x296"), metavar="NxHxW", help="fixed input shape (default: dynamic)")
    p.add_argument("--no-fold", action="store_true",
                   help="keep D output convolutions instead of folding the ensemble into one (exact either way)")
    return p


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require("torch", PROG, "pip install 'drcn[export]'")
    require("onnx", PROG, "pip install 'drcn[export]'")
    require("onnxscript", "the ONNX exporter of PyTorch", "pip install onnxscript")
    from drcn.export.exporter import export_model

    if not args.onnx and not args.triton:
        raise DrcnError("give --onnx FILE, --triton DIR, or both")
    if args.triton and args.shape:
        raise DrcnError("--shape: the Triton repository needs the dynamic graph (its window comes from --triton-tile)")
    triton = None
    if args.triton:  # every destination checked before the export's seconds of work
        from drcn.export.triton import TritonRequest, check_repository

        triton = TritonRequest(Path(args.triton), args.triton_name, args.triton_tile, args.triton_max_batch,
                               args.triton_instances, args.triton_device, fp16=not args.triton_fp32)
        check_repository(triton)
    if args.onnx:
        check_destination(args.onnx, "--onnx")
    with tempfile.TemporaryDirectory() as scratch:
        result = export_model(args.onnx or Path(scratch) / "model.onnx", weights=args.weights, opset=args.opset,
                              fp16=args.fp16, depth=args.depth, calib=args.calib, static_shape=args.shape,
                              fold_output=not args.no_fold)
        _report(result, printed_path=bool(args.onnx))
        if triton:
            from drcn.export.triton import write_repository

            model_dir = write_repository(result.path, result.info, triton)
            window = args.triton_tile + 2 * result.info.halo
            print(f"{PROG}: wrote the Triton model repository {args.triton} ({model_dir.name}/config.pbtxt, "
                  f"{model_dir.name}/1/model.onnx; windows {window}x{window}, batches up to {args.triton_max_batch}, "
                  f"{args.triton_device})")
    return 0


def _report(result, printed_path: bool) -> None:
    info, graph = result.info, result.graph
    per = 2 if info.precision == "fp16" else 4
    budget = info.config.num_parameters * per
    if result.refit:
        r = result.refit
        print(f"depth {r.depth} of {info.config.recursions}: calibration PSNR {r.psnr_renormalised:.3f} dB with the "
              f"trained weights renormalised -> {r.psnr_refit:.3f} dB after the least-squares refit")
    if result.fp16:
        print(result.fp16.summary())
    print(f"{PROG}: {'wrote ' + str(result.path) if printed_path else 'exported'} ({graph.file_bytes / 1e3:.1f} kB; "
          f"{info.config.num_parameters:,} parameters x {per} B = {budget / 1e3:.1f} kB, "
          f"{100 * (graph.file_bytes / budget - 1):+.1f}%)")
    print(f"  graph: F={info.config.filters}, depth {info.depth} of D={info.config.recursions}, halo {info.halo}, "
          f"{info.precision}, opset {info.opset}; {graph.conv_nodes} Conv nodes reading "
          f"{graph.distinct_conv_weights} distinct weights; {graph.initializers} initializers, "
          f"{graph.parameters:,} values")
    shape = "x".join(map(str, result.verify_shape))
    print(f"  verified: {result.verified_with} vs PyTorch on {shape}: max |diff| {result.max_abs_diff:.2e} "
          f"(limit {result.tolerance:g})")

if __name__ == "__main__":
    sys.exit(main())
