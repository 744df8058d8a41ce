"""Resumable checkpoints: model, optimiser, scheduler, step and RNG state, written atomically.

Loaded with ``torch.load(weights_only=True)``: a checkpoint can carry tensors and plain Python values only, so
opening one cannot execute code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from drcn.atomic import atomic_output
from drcn.config import ModelConfig
from drcn.errors import DrcnError

FORMAT = 1
KEYS = ("model_config", "train_config", "model", "optimizer", "scheduler", "scaler", "step", "best_psnr", "rng")


def save_checkpoint(path: Path, *, model_config: ModelConfig, train_config, model, optimizer, scheduler,
                    scaler, step: int, best_psnr: float, rng: dict) -> None:
    state = {"format": FORMAT, "model_config": model_config.to_dict(), "train_config": train_config.to_dict(),
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
             "best_psnr": best_psnr, "rng": rng}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | os.PathLike, option: str = "--resume", needs: tuple[str, ...] = KEYS) -> dict:
    """The checkpoint at ``path``, holding at least the keys ``needs`` (resuming needs them all, averaging only
    the model); errors name it as the value of ``option`` ('' for a plain input file)."""
    path = Path(path)
    name = f"{option} {path}" if option else str(path)
    if not path.is_file():
        raise DrcnError(f"{name}: no such checkpoint")
    # torch.save writes a zip archive; anything else is not ours, and torch's own message for it advises
    # weights_only=False, which would let the file run code.
    if not zipfile.is_zipfile(path):
        raise DrcnError(f"{name}: not a drcn checkpoint (not a PyTorch checkpoint archive; cut short or another "
                        "kind of file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DrcnError(f"{name}: not a drcn checkpoint (it holds Python objects other than tensors and plain "
                        "values, which drcn checkpoints never do; drcn will not run its code)") from None
    except Exception as exc:  # a corrupt archive: say which and why, in one line
        raise DrcnError(f"{name}: not a readable drcn checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DrcnError(f"{name}: not a drcn checkpoint (format {FORMAT})")
    missing = [key for key in needs if key not in state]
    if missing:
        raise DrcnError(f"{name}: not a drcn checkpoint (it lacks {', '.join(missing)})")
    return state


def load_checkpoint(path: str | os.PathLike, expected: ModelConfig) -> dict:
    """The checkpoint at ``path``; an error if its model config differs from ``expected``."""
    state = read_checkpoint(path)
    stored = ModelConfig.from_dict(state["model_config"])
    if stored != expected:
        raise DrcnError(f"--resume {path}: checkpoint model config {stored.to_json()} does not match the "
                        f"requested {expected.to_json()}")
    return state
