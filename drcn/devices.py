"""Which PyTorch device to run on. torch is imported inside, only by the stages that use it."""

from __future__ import annotations

from drcn.errors import DrcnError


def torch_device(requested: str) -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'; an explicit 'cuda' without one is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DrcnError(f"--device {requested}: no CUDA GPU is available to PyTorch")
    return requested
