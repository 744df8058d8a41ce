"""``drcn-train``: train DRCN on folders of HR images (paper defaults; one flag each to change).

    drcn-train --data ../shared/datasets/T91 --val ../shared/datasets/Set5 --out runs/paper
    drcn-train --filters 64 --recursions 9 --optimizer adam --lr 1e-3 --lr-schedule cosine ...
    drcn-train --resume runs/paper/checkpoint.pt            # continues exactly where it stopped
    torchrun --nproc_per_node 4 -m drcn.train.cli ...        # data-parallel (NCCL on GPUs, gloo on CPUs)
"""

from __future__ import annotations

import dataclasses
import sys

from drcn.argtypes import non_negative_float, non_negative_int, positive_int, scales, weights
from drcn.errors import ArgumentParser, DrcnError, cli_entry
from drcn.optional import require

PROG = "drcn-train"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Train DRCN with recursive supervision. Defaults are the "
                                              "paper's: F=256, D=16, 41x41 patches, batch 64, SGD lr 0.01.")
    # Every default is None so that, on --resume, only what the user typed overrides the checkpoint.
    m = p.add_argument_group("model (stored in the checkpoint and weights)")
    m.add_argument("--filters", type=positive_int, help="feature maps F (paper 256)")
    m.add_argument("--recursions", type=positive_int, help="recursions D (paper 16)")
    d = p.add_argument_group("data")
    d.add_argument("--data", nargs="+", metavar="DIR", help="folders of HR training images (e.g. T91 BSD200)")
    d.add_argument("--val", metavar="DIR", help="folder of HR validation images (e.g. Set5)")
    d.add_argument("--scales", type=scales, help="training scales, e.g. 2 or 2,3,4 (default 2)")
    d.add_argument("--scale-weights", type=weights, metavar="W,W,...",
                   help="how often each of --scales is drawn, e.g. 2,1,1 for half x2 (default: in proportion "
                        "to its patches); the best weights are chosen by the same weighted mean")
    d.add_argument("--patch", type=positive_int, help="patch size (default 41)")
    d.add_argument("--stride", type=positive_int, help="patch stride (default 21)")
    d.add_argument("--cache-dir", help="where prepared patches are cached (default: patches/ in $DRCN_CACHE, else ~/.cache/drcn)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--steps", type=positive_int, help="total optimiser steps (default 100000)")
    o.add_argument("--batch", type=positive_int, help="patches per step and process (default 64)")
    o.add_argument("--optimizer", choices=["sgd", "adam"], help="sgd (paper, momentum 0.9) or adam")
    o.add_argument("--lr", type=non_negative_float, help="learning rate (default 0.01)")
    o.add_argument("--lr-schedule", choices=["plateau", "cosine", "constant"],
                   help="plateau: ÷10 when validation PSNR stalls (paper); cosine; constant")
    o.add_argument("--weight-decay", type=non_negative_float, help="β (default 1e-4)")
    o.add_argument("--alpha-steps", type=non_negative_int, help="steps over which α decays 1 -> 0 (default steps/2)")
    o.add_argument("--clip-grad", type=non_negative_float, help="max gradient norm (default off)")
    o.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on CUDA and on CPUs with native bf16, else fp32")
    o.add_argument("--device", help="auto (default), cpu, cuda")
    o.add_argument("--seed", type=non_negative_int)
    r = p.add_argument_group("run")
    r.add_argument("--out", help="output folder (default runs/drcn)")
    r.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint.pt")
    r.add_argument("--init", metavar="WEIGHTS", help="fine-tune: start from these weights (their F and D)")
    r.add_argument("--log-every", type=positive_int)
    r.add_argument("--val-every", type=positive_int)
    r.add_argument("--checkpoint-every", type=positive_int)
    r.add_argument("--snapshot-every", type=positive_int, metavar="N",
                   help="also keep the weights every N steps as OUT/snapshots/step-*.safetensors (drcn-average)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require("torch", "drcn-train", "pip install 'drcn[train]'")
    from drcn.config import ModelConfig
    from drcn.train.checkpoint import read_checkpoint
    from drcn.train.loop import TrainConfig, train
    from drcn.weights import read_config, resolve_weights

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if "data" in overrides:
        overrides["data"] = tuple(overrides["data"])
    if args.resume:
        state = read_checkpoint(args.resume)
        model_config = ModelConfig.from_dict(state["model_config"])
        for flag, value in (("filters", args.filters), ("recursions", args.recursions)):
            if value is not None and value != getattr(model_config, flag):
                raise DrcnError(f"--{flag} {value} does not match the checkpoint's {getattr(model_config, flag)}"
                                f" ({args.resume})")
        stored = dict(state["train_config"])
        for key in ("data", "scales", "scale_weights"):
            stored[key] = tuple(stored.get(key, ()))
        cfg = dataclasses.replace(TrainConfig(**stored), **overrides)
    else:
        if not args.data:
            raise DrcnError("--data: give at least one folder of HR training images (or --resume a run)")
        cfg = TrainConfig(**overrides)
        base = read_config(resolve_weights(args.init)) if args.init else ModelConfig()
        for flag in ("filters", "recursions"):
            value = getattr(args, flag)
            if args.init and value is not None and value != getattr(base, flag):
                raise DrcnError(f"--{flag} {value} does not match --init {args.init} ({getattr(base, flag)})")
        model_config = ModelConfig(filters=args.filters or base.filters,
                                   recursions=args.recursions or base.recursions, scales=cfg.scales)
    if cfg.scale_weights and len(cfg.scale_weights) != len(cfg.scales):
        raise DrcnError(f"--scale-weights: {len(cfg.scale_weights)} weights for {len(cfg.scales)} scales "
                        f"({','.join(f'{s:g}' for s in cfg.scales)}); give one per scale")
    if model_config.scales != tuple(cfg.scales):
        model_config = dataclasses.replace(model_config, scales=tuple(cfg.scales))
        if args.resume:
            raise DrcnError(f"--scales {cfg.scales} differs from the checkpoint's {state['model_config']['scales']}")
    best = train(model_config, cfg, resume=args.resume, progress=not args.no_progress)
    print(f"drcn-train: best weights in {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
