"""``drcn-qat``: quantization-aware fine-tuning of an INT8 graph made by ``drcn-export --int8``.

    drcn-qat weights/drcn_f64_d9_int8.onnx --data ../shared/datasets/T91 ../shared/datasets/BSD200 --out tuned_int8.onnx
    drcn-qat model_int8.onnx --fp32 model.onnx --data T91 --steps 3000 --out tuned_int8.onnx --resume
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from drcn.argtypes import non_negative_float, non_negative_int, positive_int
from drcn.errors import ArgumentParser, DrcnError, cli_entry
from drcn.optional import require

PROG = "drcn-qat"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Fine-tune an INT8 graph (drcn-export --int8) so that its output "
                                              "matches its fp32 graph's: same scales, weights re-rounded. Writes "
                                              "the best weights on the calibration images, only if they beat the "
                                              "graph's own.")
    p.add_argument("int8", metavar="INT8_ONNX", help="the INT8 graph to fine-tune (<model>_int8.onnx)")
    p.add_argument("--fp32", metavar="ONNX", help="the fp32 graph it was quantized from (default: <model>.onnx "
                                                  "beside it)")
    p.add_argument("--data", nargs="+", metavar="DIR", required=True, help="folders of HR training images")
    p.add_argument("--out", required=True, help="where the fine-tuned INT8 graph is written")
    p.add_argument("--calib", nargs="+", metavar="DIR",
                   help="folders scored on (default: the bundled photos and textures, not training images)")
    p.add_argument("--steps", type=positive_int, default=2000)
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--lr", type=non_negative_float, default=1e-5, help="Adam learning rate, cosine decay")
    p.add_argument("--patch", type=positive_int, default=48, help="patch size (default 48)")
    p.add_argument("--eval-every", type=positive_int, default=250, metavar="N",
                   help="score and checkpoint every N steps (default 250)")
    p.add_argument("--learn-scales", action="store_true",
                   help="the activation scales learn too (LSQ): where each quantizer trades clipping for resolution")
    p.add_argument("--tail-weight", type=non_negative_float, default=0.0, metavar="W",
                   help="also penalise the largest errors (squared excess beyond 2 levels, times W) and choose the "
                        "step by the per-pixel bound first (at most 0.01%% of values more than 4 levels off, none "
                        "more than 12), then by PSNR (default 0: mean squared difference, PSNR only)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--cache-dir", help="where prepared patches are cached (as drcn-train)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.qat-checkpoint.pt")
    p.add_argument("--no-progress", action="store_true")
    return p


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require("torch", PROG, "pip install 'drcn[train]'")
    require("onnx", PROG, "pip install 'drcn[export]'")
    from drcn.train.qat import QatConfig, fine_tune

    int8 = Path(args.int8)
    if not int8.is_file():
        raise DrcnError(f"{int8}: no such INT8 graph")
    # <model>_int8.onnx and a scale's <model>_int8_x3.onnx were both quantized from <model>.onnx
    fp32 = Path(args.fp32) if args.fp32 else int8.with_name(re.sub(r"_int8(_x\d+)?\.onnx$", ".onnx", int8.name))
    if fp32 == int8 or not fp32.is_file():
        raise DrcnError(f"--fp32: give the fp32 graph {int8} was quantized from ({fp32} does not exist)")
    if Path(args.out).resolve() == int8.resolve():
        raise DrcnError(f"--out {args.out}: is the graph being fine-tuned; write elsewhere, then compare")
    for folder in (args.data or []) + (args.calib or []):
        if not Path(folder).is_dir():
            raise DrcnError(f"{folder}: no such folder")
    cfg = QatConfig(int8=str(int8), fp32=str(fp32), data=tuple(args.data), out=args.out, steps=args.steps,
                    batch=args.batch, lr=args.lr, patch=args.patch, stride=max(1, args.patch // 2),
                    eval_every=args.eval_every, calib=tuple(args.calib or ()), seed=args.seed,
                    cache_dir=args.cache_dir, threads=args.threads or 0, learn_scales=args.learn_scales,
                    tail_weight=args.tail_weight)
    result = fine_tune(cfg, resume=args.resume, progress=not args.no_progress,
                       log=lambda line: print(line, flush=True))
    before, after = min(result.start_db.values()), min(result.best_db.values())
    if result.path is None:
        raise DrcnError(f"no step beat the start on the calibration images (worst scale {before:+.4f} dB, best "
                        f"seen {after:+.4f}); nothing written")
    print(f"drcn-qat: {result.path}: worst-scale Y-PSNR change vs fp32 {before:+.4f} -> {after:+.4f} dB "
          f"(step {result.best_step} of {result.steps}, {result.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
