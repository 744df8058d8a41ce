"""``drcn-export``: the trained model as one verified ONNX file, recursion unrolled, weights tied.

    drcn-export --onnx model.onnx                       # the shipped model, fp32, dynamic N/H/W
    drcn-export --onnx model_fp16.onnx --fp16           # FP16 weights and arithmetic, float32 I/O
    drcn-export --onnx fast.onnx --depth 5 --calib ../shared/datasets/T91
    drcn-export --triton models/ --triton-tile 256          # a Triton model repository: models/drcn/...
    drcn-export --onnx frame_x2_e8.onnx --rgb --ensemble 8  # whole frames, every flip and rotation averaged inside
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from drcn.argtypes import dims, ensemble_size, frame_scales, opset, positive_int
from drcn.atomic import check_destination
from drcn.errors import ArgumentParser, DrcnError, cli_entry
from drcn.optional import require

PROG = "drcn-export"


def build_parser() -> ArgumentParser:
    from drcn.export.exporter import DEFAULT_OPSET

    p = ArgumentParser(prog=PROG, description="Export DRCN to ONNX with the recursion unrolled and its weights "
                                              "tied; the written graph is checked and verified against PyTorch.")
    p.add_argument("--onnx", metavar="FILE", help="output .onnx file (one self-contained file)")
    k = p.add_mutually_exclusive_group()
    k.add_argument("--rgb", action="store_true",
                   help="the whole-frame graph: (N, 3, h, w) RGB in [0, 1] in, (N, 3, s*h, s*w) out (chaiNNer, "
                        "vs-mlrt, Triton clients); colour and MATLAB bicubic inside, in float32")
    k.add_argument("--gray", action="store_true",
                   help="the same for one plane (LR luma in, HR luma out; vs-mlrt GRAY clips)")
    p.add_argument("--no-fp16-grid", action="store_true",
                   help="--rgb/--gray: keep the network's weights exactly as trained instead of on the fp16 grid "
                        "(then converters that store fp16, e.g. ovc and pnnx, change some output values)")
    p.add_argument("--scale", type=frame_scales, metavar="S[,S]",
                   help="scale of --rgb/--gray graphs and of the Triton repository's (2, 3 or 4; default 2); with "
                        "--int8 and a Y graph, the scales to make INT8 graphs for (default: every scale the model "
                        "serves)")
    t = p.add_argument_group("Triton Inference Server model repository")
    t.add_argument("--triton", metavar="DIR", help="write DIR/<name>/config.pbtxt and DIR/<name>/1/model.onnx")
    t.add_argument("--triton-name", default="drcn", help="model name (default drcn)")
    t.add_argument("--triton-kind", choices=["rgb", "gray", "y"], default="rgb",
                   help="what the server takes: rgb (default; LR RGB in, upscaled RGB out, any size), gray, or y "
                        "(the bicubic-upscaled Y plane in fixed windows, tiled by the client)")
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
    p.add_argument("--int8", action="store_true",
                   help="INT8 QDQ graph (NNCF; symmetric activations, per-channel weights; what stays in float is "
                        "chosen by a quantization study), refused if the calibration PSNR drops more than 0.05 dB")
    p.add_argument("--int8-from", metavar="INT8_ONNX",
                   help="--int8: start from this INT8 graph of the same model (e.g. one drcn-qat fine-tuned) instead "
                        "of quantizing; its weights and scope are kept and only its activation ranges are chosen per "
                        "scale")
    p.add_argument("--ensemble", type=ensemble_size, default=1, metavar="N",
                   help="geometric self-ensemble inside the graph: the network runs on 2 (mirror), 4 (mirrors, half "
                        "turn) or 8 (every flip and rotation) transforms of its input, undone and averaged; N times "
                        "the compute, for any consumer (default 1: off)")
    p.add_argument("--depth", type=positive_int, help="keep only the first d recursions (ensemble refit)")
    p.add_argument("--calib", nargs="+", metavar="DIR",
                   help="training-image folders for the --depth refit (default: bundled photos) and the "
                        "--fp16/--int8 checks (default: bundled photos and textures)")
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
    kind = "rgb" if args.rgb else "gray" if args.gray else "y"
    if kind != "y" and not args.onnx:
        raise DrcnError(f"--{kind} writes the --onnx FILE; give --onnx (the Triton repository takes --triton-kind)")
    if kind == "y" and args.no_fp16_grid:
        raise DrcnError("--no-fp16-grid applies to --rgb/--gray graphs (a Y graph keeps its weights as trained)")
    if kind != "y" and (args.shape or args.fp16):
        raise DrcnError(f"--{kind}: {'--shape' if args.shape else '--fp16'} applies to the Y graph; a whole-frame "
                        "graph stays dynamic and float32 (drcn-trt build --fp16 converts its network alone)")
    if args.scale and len(args.scale) > 1 and (kind != "y" or not args.int8):
        raise DrcnError(f"--scale {','.join(map(str, args.scale))}: one scale, except for --int8 Y graphs (a "
                        "whole-frame graph or a Triton repository has one scale)")
    int8_scales = args.scale if kind == "y" else None
    args.scale = args.scale[0] if args.scale else 2
    if args.int8:
        clash = next((flag for flag, on in (("--fp16", args.fp16), ("--shape", args.shape), ("--triton", args.triton))
                      if on), None)
        if clash:
            raise DrcnError(f"--int8 with {clash}: the INT8 graph is a dynamic graph of its own (Y, or with --rgb/"
                            "--gray the whole frame)")
        if not args.onnx:
            raise DrcnError("--int8 writes the --onnx FILE; give --onnx")
        require("nncf", "drcn-export --int8", "pip install 'drcn[int8]'")
        if args.int8_from and not Path(args.int8_from).is_file():
            raise DrcnError(f"--int8-from {args.int8_from}: no such file")
    elif args.int8_from:
        raise DrcnError("--int8-from applies to --int8")
    triton = None
    if args.triton:  # every destination checked before the export's seconds of work
        from drcn.export.triton import TritonRequest, check_repository

        triton = TritonRequest(Path(args.triton), args.triton_name, args.triton_tile, args.triton_max_batch,
                               args.triton_instances, args.triton_device, fp16=not args.triton_fp32)
        check_repository(triton)
    if args.onnx:
        check_destination(args.onnx, "--onnx")
    with tempfile.TemporaryDirectory() as scratch:
        final = kind == "y" and not args.int8 and args.ensemble == 1   # the exported Y graph is the file asked for
        y_path = Path(args.onnx) if args.onnx and final else Path(scratch) / "model.onnx"
        result = export_model(y_path, weights=args.weights, opset=args.opset,
                              fp16=args.fp16, depth=args.depth, calib=args.calib, static_shape=args.shape,
                              fold_output=not args.no_fold)
        _report(result, printed_path=bool(args.onnx) and final)
        if args.int8:
            from drcn.export.int8 import MAX_INT8_PSNR_DROP, export_int8

            int8_final = kind == "y" and args.ensemble == 1
            int8_path = Path(args.onnx) if int8_final else Path(scratch) / "model_int8.onnx"
            made = export_int8(y_path, int8_path, args.calib, scales=int8_scales if kind == "y" else [args.scale],
                               start_from=Path(args.int8_from) if args.int8_from else None,
                               log=lambda message: print(f"{PROG}: {message}", flush=True))
            y_path = made.path   # a frame graph wraps the INT8 network (of the frame's scale)
            int8_siblings = [(g.path, g.scales[0]) for g in made.graphs if g.path != made.path]
            _report_int8(made, int8_final, MAX_INT8_PSNR_DROP)
        if args.ensemble > 1:
            from drcn.export.ensemble_export import MAX_DIFF, export_ensemble_graph
            from drcn.onnx_meta import scale_sibling_name

            ensemble_path = Path(args.onnx) if args.onnx and kind == "y" else Path(scratch) / "model_ensemble.onnx"
            made = export_ensemble_graph(y_path, ensemble_path, args.ensemble)
            y_path = ensemble_path   # a frame graph or the Triton repository wraps the ensemble
            print(f"{PROG}: {'wrote ' + str(made.path) if kind == 'y' and args.onnx else 'wrapped the network'} "
                  f"({made.path.stat().st_size / 1e3:.1f} kB): self-ensemble of {args.ensemble} flips/rotations "
                  f"inside the graph ({args.ensemble}x the network's compute)")
            print(f"  checked: ONNX Runtime vs the ensemble around the plain graph on {made.windows} windows: max "
                  f"|diff| {made.max_abs_diff:.2e} (limit {MAX_DIFF:g})")
            if args.int8 and kind == "y":    # each scale's INT8 graph gets the ensemble too, beside the main one
                for sibling, scale in int8_siblings:
                    wrapped = export_ensemble_graph(sibling, scale_sibling_name(ensemble_path, scale), args.ensemble)
                    print(f"{PROG}: wrote {wrapped.path} (the x{scale} INT8 graph, self-ensemble of {args.ensemble})")
        if kind != "y":
            from drcn.export.frame_export import export_frame_graph

            made = export_frame_graph(y_path, Path(args.onnx), kind, args.scale, fp16_grid=not args.no_fp16_grid)
            print(f"{PROG}: wrote {made.path} ({made.path.stat().st_size / 1e3:.1f} kB): the whole frame, {kind} x"
                  f"{args.scale}, input (N, {made.info.channels}, h, w) -> output (N, {made.info.channels}, "
                  f"{args.scale}h, {args.scale}w), LR halo {made.info.input_halo}")
            if made.grid_psnr:
                print(f"  weights on the fp16 grid (converters that store fp16, e.g. ovc and pnnx, change nothing): "
                      f"calibration Y-PSNR {made.grid_psnr[0]:.4f} -> {made.grid_psnr[1]:.4f} dB")
            print(f"  checked: ONNX Runtime vs drcn-run's host path on {made.images} sample photos: "
                  f"{100 * made.differing:.4f}% of values differ, by at most {made.max_levels} grey level(s)"
                  + (f"; stored in fp16: {100 * made.stored.fraction:.4f}% differ" if made.stored else ""))
        if triton:
            from drcn.export.triton import write_repository
            from drcn.onnx_meta import read_onnx_info

            served, served_info = y_path, read_onnx_info(y_path)
            if args.triton_kind != "y":
                from drcn.runtime.frame_graph import write_frame_graph

                served = Path(scratch) / "frame.onnx"
                served_info = write_frame_graph(y_path, served, args.triton_kind, args.scale)
            model_dir = write_repository(served, served_info, triton)
            window = args.triton_tile + 2 * result.info.halo
            takes = (f"windows {window}x{window}" if args.triton_kind == "y" else
                     f"{args.triton_kind} frames of any size, x{args.scale}")
            print(f"{PROG}: wrote the Triton model repository {args.triton} ({model_dir.name}/config.pbtxt, "
                  f"{model_dir.name}/1/model.onnx; {takes}, batches up to {args.triton_max_batch}, "
                  f"{args.triton_device})")
    return 0


def _report_int8(made, written: bool, limit: float) -> None:
    for graph in made.graphs:
        changes = "; ".join(
            f"float parts {p}: " + ", ".join(f"{k} {v:+.4f} dB" for k, v in graph.change_db[p].items())
            + f", per pixel at most {graph.pixels[p]['max']} levels, {graph.pixels[p]['over4_pct']:.4f}% of values "
              f"more than 4 off ({graph.pixels[p]['scale']})" for p in graph.change_db)
        print(f"{PROG}: {'wrote ' + str(graph.path) if written else 'quantized'} ({graph.path.stat().st_size / 1e3:.1f} "
              f"kB, int8 for x{', x'.join(map(str, graph.scales))}, {made.chosen.label}, activation ranges "
              f"x{graph.factor:g}): {changes} (limit -{limit} dB)")
    for scale, why in made.no_graph.items():
        print(f"{PROG}: no INT8 graph for x{scale}: {why}; runs at x{scale} stay in float")
    for stale in made.removed:
        print(f"{PROG}: removed {stale} (an older export's graph for a scale this export serves otherwise)")
    print(f"{PROG}: calibration Y-PSNR {made.psnr_fp32:.3f} dB, {made.windows} windows, {made.seconds:.0f} s")


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
