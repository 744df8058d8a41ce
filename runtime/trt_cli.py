"""``drcn-trt``: build TensorRT engines and inspect them.

    drcn-trt build --fp16                         # model.onnx here -> model.engine + model.engine.json
    drcn-trt build --onnx m.onnx --tile 256 --batch 8
    drcn-trt info model.engine                    # what the engine was built from and for (no TensorRT needed)
"""

from __future__ import annotations

import sys
from pathlib import Path

from drcn.argtypes import dims, non_negative_int
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-trt"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="TensorRT engines for DRCN.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build an engine (and its sidecar) from an ONNX file")
    b.add_argument("--onnx", default="model.onnx", help="ONNX file from drcn-export (default: model.onnx)")
    b.add_argument("--engine", help="output engine (default: the ONNX name with .engine)")
    b.add_argument("--fp16", action="store_true", help="FP16 engine (TensorRT 11: give the --fp16 ONNX graph)")
    b.add_argument("--tile", type=non_negative_int, default=256, help="tile drcn-run will use (default 256; 0 = frames)")
    b.add_argument("--batch", type=non_negative_int, default=4, help="tiles per call drcn-run will use (default 4)")
    b.add_argument("--max-size", type=dims("HxW", "1080x1920"), metavar="HxW", help="largest frame, with --tile 0")
    b.add_argument("--workspace", type=float, default=4.0, help="builder workspace in GiB (default 4)")
    b.add_argument("--timing-cache", help="timing cache file (default: beside the engine)")
    b.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    b.set_defaults(run=run_build)
    i = sub.add_parser("info", help="print an engine's sidecar")
    i.add_argument("engine", help="engine file")
    i.set_defaults(run=run_info)
    return p


def run_build(args) -> int:
    from drcn.runtime.engine_build import BuildRequest, build_engine
    from drcn.runtime.tensorrt_common import import_tensorrt

    onnx = Path(args.onnx)
    if not onnx.is_file():
        raise DrcnError(f"--onnx {onnx}: no such file (export one with: drcn-export --onnx {onnx})")
    if args.batch < 1:
        raise DrcnError("--batch must be at least 1")
    import_tensorrt()  # the most likely missing piece: say so before anything else
    engine = Path(args.engine) if args.engine else onnx.with_suffix(".engine")
    request = BuildRequest(onnx=onnx, engine=engine, fp16=args.fp16, tile=args.tile, batch=args.batch,
                           max_size=args.max_size, workspace_gib=args.workspace,
                           timing_cache=Path(args.timing_cache) if args.timing_cache else None,
                           verbose=args.verbose)
    sidecar = build_engine(request)
    print(f"{PROG}: wrote {engine} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu.name}; "
          f"profile {sidecar.profile.min} .. {sidecar.profile.max}) and {engine.name}.json")
    return 0


def run_info(args) -> int:
    from drcn.runtime.engine_sidecar import read_sidecar

    engine = Path(args.engine)
    if not engine.is_file():
        raise DrcnError(f"{engine}: no such engine file")
    print(read_sidecar(engine).to_json(), end="")
    return 0


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
