"""Where a training process runs and in which precision: torchrun ranks, devices, autocast dtype.

Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) every process joins one group: NCCL on GPUs, gloo on CPUs.
A single process needs none of it and runs as rank 0 of 1.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from drcn.cpu import has_native_bf16
from drcn.devices import torch_device
from drcn.errors import DrcnError


@dataclasses.dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> Distributed:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(requested: str, local_rank: int) -> torch.device:
    """The device of this process: a plain 'cuda' means this rank's GPU under torchrun."""
    name = torch_device(requested)
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def pick_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. 'auto': bf16 on CUDA (fp16 before Ampere) and on CPUs with
    native bf16; fp32 elsewhere, because emulated bf16 is slower than fp32."""
    if requested == "fp32":
        return None
    if requested == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if has_native_bf16() else None
    if requested == "fp16" and device.type != "cuda":
        raise DrcnError("--precision fp16 needs a CUDA device; use bf16 or fp32 on a CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[requested]


def any_rank(flag: bool, dist_info: Distributed) -> bool:
    """True on every rank when ``flag`` is true on at least one (so all ranks take the same branch)."""
    if dist_info.world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def check_ranks_agree(model: nn.Module, dist_info: Distributed) -> None:
    """Fail loudly if data-parallel replicas drifted apart (they must be bit-identical)."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"data-parallel replicas differ (max gap {float((high - low).max())})")
    if dist_info.main:
        print(f"drcn-train: weights identical on all {dist_info.world} ranks", flush=True)
