"""``drcn-trt``: build TensorRT engines and inspect them.

    drcn-trt build --fp16                         # model.onnx here -> model.engine + model.engine.json
    drcn-trt build --onnx m.onnx --tile 256 --batch 8 --flavour rtx --compute-capability 8.6,8.9
    drcn-trt info model.engine                    # what the engine was built from and for (no TensorRT needed)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drcn.argtypes import dims, non_negative_int, positive_float, positive_int
from drcn.atomic import check_destination
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-trt"


def _targets(text: str) -> tuple[str, ...]:
    from drcn.runtime.tensorrt.flavour import parse_targets

    try:
        return parse_targets(text)
    except DrcnError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="TensorRT engines for DRCN (standard TensorRT or TensorRT for RTX).")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build an engine (and its sidecar) from an ONNX file")
    b.add_argument("--onnx", default="model.onnx", help="ONNX file from drcn-export (default: model.onnx)")
    b.add_argument("--engine", help="output engine (default: the ONNX name with .engine)")
    b.add_argument("--fp16", action="store_true",
                   help="FP16 engine: from an FP16 graph as it is, from an FP32 graph with the FP16 flag (TensorRT 10) "
                        "or a checked FP16 conversion (TensorRT 11, RTX)")
    b.add_argument("--tile", type=non_negative_int, default=256, help="tile drcn-run will use (default 256; 0 = frames)")
    b.add_argument("--batch", type=positive_int, default=4, help="tiles per call drcn-run will use (default 4)")
    b.add_argument("--max-size", type=dims("HxW", "1080x1920"), metavar="HxW", help="largest frame, with --tile 0")
    b.add_argument("--flavour", default="auto", choices=["auto", "standard", "rtx"],
                   help="auto (what is installed; with both, the one that targets this GPU, RTX without a GPU), "
                        "standard (tensorrt) or rtx (tensorrt_rtx)")
    b.add_argument("--compute-capability", type=_targets, metavar="CC[,CC]",
                   help="RTX: GPUs to build for, e.g. 8.6,8.9 (default: the library's, 8.0, 8.6, 8.9, 12.0+)")
    b.add_argument("--calib", nargs="+", metavar="DIR",
                   help="image folders for the FP16 conversion check (default: bundled photos and textures)")
    b.add_argument("--workspace", type=positive_float, default=4.0, help="builder workspace in GiB (default 4)")
    b.add_argument("--timing-cache", help="standard TensorRT: timing cache file (default: beside the engine)")
    b.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    b.set_defaults(run=run_build)
    i = sub.add_parser("info", help="print an engine's sidecar")
    i.add_argument("engine", help="engine file")
    i.set_defaults(run=run_info)
    return p


def run_build(args) -> int:
    from drcn.runtime.tensorrt.build import BuildRequest, build_engine
    from drcn.runtime.tensorrt.flavour import FLAVOURS

    onnx = Path(args.onnx)
    if not onnx.is_file():
        raise DrcnError(f"--onnx {onnx}: no such file (export one with: drcn-export --onnx {onnx})")
    engine = Path(args.engine) if args.engine else onnx.with_suffix(".engine")
    check_destination(engine, "--engine")
    request = BuildRequest(onnx=onnx, engine=engine, fp16=args.fp16, tile=args.tile, batch=args.batch,
                           max_size=args.max_size, flavour=args.flavour,
                           compute_capabilities=args.compute_capability or (), workspace_gib=args.workspace,
                           timing_cache=Path(args.timing_cache) if args.timing_cache else None,
                           calib=tuple(args.calib) if args.calib else None, verbose=args.verbose)
    sidecar = build_engine(request, log=lambda message: print(f"{PROG}: {message}", flush=True))
    where = (f"for compute {', '.join(sidecar.targets)}" if sidecar.targets else f"on {sidecar.gpu.name}")
    label = FLAVOURS[sidecar.flavour].label
    print(f"{PROG}: wrote {engine} ({engine.stat().st_size / 1e3:.0f} kB, {sidecar.precision}, {label} "
          f"{sidecar.tensorrt_version}, {where}; profile {sidecar.profile.min} .. "
          f"{sidecar.profile.max}) and {engine.name}.json")
    return 0


def run_info(args) -> int:
    from drcn.checksums import file_sha256
    from drcn.runtime.tensorrt.sidecar import read_sidecar

    engine = Path(args.engine)
    if not engine.is_file():
        raise DrcnError(f"{engine}: no such engine file")
    sidecar = read_sidecar(engine)
    print(sidecar.to_json(), end="")
    actual = file_sha256(engine)
    if actual != sidecar.engine_sha256:
        raise DrcnError(f"{engine}: does not match its sidecar (sha256 {actual[:12]}..., the sidecar says "
                        f"{sidecar.engine_sha256[:12]}...): the file was changed or cut short after the build. "
                        f"Rebuild it: {sidecar.rebuild_command()}")
    print(f"{PROG}: {engine}: checksum matches the sidecar", file=sys.stderr)  # stdout stays pure JSON
    return 0


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
