"""Resumable checkpoints: model, optimiser, scheduler, step and RNG state, written atomically.

Loaded with ``torch.load(weights_only=True)``: a checkpoint can carry tensors and plain Python values only, so
opening one cannot execute code.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from drcn.atomic import atomic_output
from drcn.config import ModelConfig
from drcn.errors import DrcnError

FORMAT = 1


def save_checkpoint(path: Path, *, model_config: ModelConfig, train_config, model, optimizer, scheduler,
                    scaler, step: int, best_psnr: float, rng: dict) -> None:
    state = {"format": FORMAT, "model_config": model_config.to_dict(), "train_config": train_config.to_dict(),
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
             "best_psnr": best_psnr, "rng": rng}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | os.PathLike, option: str = "--resume") -> dict:
    """The checkpoint at ``path``; errors name it as the value of ``option`` ('' for a plain input file)."""
    path = Path(path)
    name = f"{option} {path}" if option else str(path)
    if not path.is_file():
        raise DrcnError(f"{name}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which and why, in one line
        raise DrcnError(f"{name}: not a readable drcn checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DrcnError(f"{name}: not a drcn checkpoint (format {FORMAT})")
    return state


def load_checkpoint(path: str | os.PathLike, expected: ModelConfig) -> dict:
    """The checkpoint at ``path``; an error if its model config differs from ``expected``."""
    state = read_checkpoint(path)
    stored = ModelConfig.from_dict(state["model_config"])
    if stored != expected:
        raise DrcnError(f"--resume {path}: checkpoint model config {stored.to_json()} does not match the "
                        f"requested {expected.to_json()}")
    return state
