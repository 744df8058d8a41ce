"""``drcn-average``: the mean of several snapshots of one run, as one weights file (Polyak / SWA averaging).

    drcn-average --out averaged.safetensors runs/a/step-3000.pt runs/a/step-3100.pt ... runs/a/step-3900.pt

Late in a run, successive snapshots scatter around a minimum by the noise of the last updates; their mean sits
nearer its centre, which usually scores a little better than any one of them. Inputs are training checkpoints
(``checkpoint.pt``) or weights files (``.safetensors``) with one and the same model config.
"""

from __future__ import annotations

import sys
from pathlib import Path

from drcn.errors import ArgumentParser, DrcnError, cli_entry
from drcn.optional import require

PROG = "drcn-average"


def _read_state(path: Path):
    """(ModelConfig, state dict of float tensors) of a checkpoint or a weights file."""
    from drcn.config import ModelConfig

    if not path.is_file():
        raise DrcnError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from drcn.weights import load_model

        model = load_model(path)
        return model.config, model.state_dict()
    from drcn.train.checkpoint import read_checkpoint

    state = read_checkpoint(path, option="", needs=("model_config", "model"))
    return ModelConfig.from_dict(state["model_config"]), state["model"]


def average_weights(paths: list[Path]):
    """A :class:`drcn.model.DRCN` holding the element-wise mean of the snapshots ``paths`` (computed in float64)."""
    import torch

    from drcn.model import DRCN

    if not paths:
        raise DrcnError("give at least one checkpoint or weights file to average")
    config, total = None, None
    for path in paths:
        cfg, state = _read_state(Path(path))
        if config is None:
            config, total = cfg, {k: v.detach().to(torch.float64).clone() for k, v in state.items()}
            continue
        if cfg != config:
            raise DrcnError(f"{path}: model config {cfg.to_json()} differs from {paths[0]}'s {config.to_json()}")
        for key, value in state.items():
            total[key] += value.detach().to(torch.float64)
    model = DRCN(config)
    model.load_state_dict({k: (v / len(paths)).to(torch.float32) for k, v in total.items()})
    return model.eval()


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Average the weights of several snapshots of one training run "
                                              "(checkpoint.pt or .safetensors) into one weights file.")
    p.add_argument("inputs", nargs="+", metavar="SNAPSHOT", help="checkpoints or weights files, same model config")
    p.add_argument("--out", required=True, help="the averaged weights (.safetensors), written atomically")
    return p


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require("torch", PROG, "pip install 'drcn[train]'")
    from drcn import __version__
    from drcn.weights import save_weights

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise DrcnError(f"--out {out}: the averaged weights are written as .safetensors")
    model = average_weights([Path(p) for p in args.inputs])
    save_weights(out, model, {"averaged_from": ",".join(Path(p).name for p in args.inputs),
                              "version": __version__})
    print(f"{PROG}: mean of {len(args.inputs)} snapshots written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
