"""The DRCN training loop: one process or data-parallel under torchrun, resumable at any step.

Read top to bottom: set-up (devices, data, model, optimiser), then ``for step ...`` with the loss, logging,
validation and checkpoints. Only rank 0 writes files; every rank holds identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drcn import __version__
from drcn.config import ModelConfig
from drcn.cpu import has_native_bf16
from drcn.errors import DrcnError
from drcn.model import DRCN
from drcn.runtime.torch_backend import torch_device
from drcn.train.checkpoint import load_checkpoint, save_checkpoint
from drcn.train.data import PatchSet, PatchSpec
from drcn.train.objective import alpha_at, drcn_loss
from drcn.weights import save_weights


@dataclasses.dataclass
class TrainConfig:
    """Everything about a run except the architecture (that is :class:`ModelConfig`). Paper defaults."""

    data: tuple[str, ...] = ()
    out: str = "runs/drcn"
    val: str | None = None
    scales: tuple[float, ...] = (2.0,)
    scale_weights: tuple[float, ...] = ()  # sampling weight per scale; () = every patch equally likely
    patch: int = 41
    stride: int = 21
    batch: int = 64                 # per process
    steps: int = 100_000
    optimizer: str = "sgd"          # sgd (paper) | adam
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4      # β
    lr_schedule: str = "plateau"    # plateau (paper: ÷10 when validation stalls) | cosine | constant
    plateau_patience: int = 4       # validations without improvement before the lr drops
    min_lr: float = 1e-6
    alpha_steps: int = 0            # α reaches 0 here; 0 = half of ``steps``
    clip_grad: float = 0.0          # max gradient norm; 0 = off
    precision: str = "auto"         # auto | fp32 | bf16 | fp16
    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 500
    snapshot_every: int = 0         # also keep the weights every N steps in OUT/snapshots (for drcn-average)
    cache_dir: str | None = None
    init: str | None = None         # start from these weights (fine-tuning) instead of a fresh initialisation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise DrcnError(f"--optimizer: unknown optimiser '{cfg.optimizer}' (sgd or adam)")


def build_scheduler(optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                          patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=cfg.min_lr)
    if cfg.lr_schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise DrcnError(f"--lr-schedule: unknown schedule '{cfg.lr_schedule}' (plateau, cosine or constant)")


class _ModelMethod:
    """Adapts the model being trained to the ``drcn-bench`` method interface, for validation."""

    name = "training"

    def __init__(self, model: DRCN, device: torch.device):
        self.model, self.device = model, device

    @torch.no_grad()
    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None].to(self.device)
        return self.model(x)[0, 0].float().cpu().numpy()


def validate(model: DRCN, folder: str, scales, device: torch.device) -> dict[str, float]:
    """Mean Y-PSNR (fp32, paper conventions) on ``folder`` at each scale: {"x2": 36.1, ...}."""
    from drcn.benchmarks.quality import evaluate, folder_dataset, summarise

    was_training = model.training
    model.eval()
    dataset = folder_dataset(folder)
    result = {f"x{s:g}": summarise(evaluate(_ModelMethod(model, device), dataset, s))["psnr"] for s in scales}
    model.train(was_training)
    return result


def selection_psnr(scores: dict[str, float], scale_weights: tuple[float, ...] = ()) -> float:
    """What the best weights are chosen by: the mean validation PSNR over scales, weighted by
    ``scale_weights`` when given (the same emphasis as the training batches)."""
    weights = scale_weights or (1.0,) * len(scores)
    return sum(w * v for w, v in zip(weights, scores.values())) / sum(weights)


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """After a resume, drop log lines from steps the checkpoint does not contain (they will be redone)."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _check_ranks_agree(model: nn.Module, dist_info: Distributed) -> None:
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


class _StopRequest:
    """Ctrl-C / SIGTERM end the run at the next step boundary with a checkpoint; a second Ctrl-C stops at once.

    Stopping only between steps keeps the checkpoint exact: resuming it gives the same weights as a run that
    was never interrupted. Under torchrun the ranks agree on the step to stop at, so none waits forever.
    """

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def agreed(self, dist_info: "Distributed") -> bool:
        if dist_info.world == 1:
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())


def train(model_config: ModelConfig, cfg: TrainConfig, resume: str | None = None,
          progress: bool = True) -> Path:
    """Train; returns the path of the best weights (``OUT/best.safetensors``)."""
    from drcn.train.curves import plot_curves

    dist_info = setup_distributed("cuda" if torch_device(cfg.device).startswith("cuda") else "cpu")
    device = pick_device(cfg.device, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # every step has the same shapes
    amp_dtype = pick_precision(cfg.precision, device)
    out = Path(cfg.out)
    ckpt_path, best_path, log_path = out / "checkpoint.pt", out / "best.safetensors", out / "metrics.jsonl"

    torch.manual_seed(cfg.seed)
    model = DRCN(model_config).to(device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    rng = np.random.default_rng(cfg.seed)
    step, best_psnr = 0, -math.inf
    if cfg.init and not resume:
        from drcn.weights import load_model

        model.load_state_dict(load_model(cfg.init).state_dict())
    if resume:
        state = load_checkpoint(resume, model_config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        step, best_psnr = state["step"], state["best_psnr"]
        if dist_info.main:
            _truncate_log(log_path, step)

    patches = PatchSet.from_folders(list(cfg.data), PatchSpec(tuple(cfg.scales), cfg.patch, cfg.stride),
                                    Path(cfg.cache_dir) if cfg.cache_dir else None,
                                    show_progress=progress and dist_info.main)
    alpha_steps = cfg.alpha_steps or cfg.steps // 2
    net = model
    if dist_info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(
            {"model": model_config.to_dict(), "train": cfg.to_dict(), "world_size": dist_info.world,
             "precision": str(amp_dtype or "fp32"), "device": str(device), "patches": len(patches)}, indent=2))
        print(f"drcn-train: {len(patches)} patches, {model_config.num_parameters} parameters, device {device}, "
              f"precision {str(amp_dtype).replace('torch.', '') if amp_dtype else 'fp32'}, "
              f"{dist_info.world} process(es), steps {step}->{cfg.steps}", flush=True)

    def checkpoint():
        if dist_info.main:
            save_checkpoint(ckpt_path, model_config=model_config, train_config=cfg, model=model,
                            optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=step,
                            best_psnr=best_psnr, rng={"numpy": rng.bit_generator.state,
                                                      "torch": torch.get_rng_state()})

    def maybe_validate():
        nonlocal best_psnr
        if not cfg.val:
            return
        psnr = torch.zeros(1)
        if dist_info.main:
            scores = validate(model, cfg.val, cfg.scales, device)
            psnr[0] = selection_psnr(scores, cfg.scale_weights)
            _append_jsonl(log_path, {"step": step, "val_psnr": scores})
            if psnr.item() > best_psnr:
                best_psnr = psnr.item()
                save_weights(best_path, model, {"step": step, "val_psnr": json.dumps(scores),
                                                "version": __version__})
            plot_curves(log_path, out / "curves.png")
            print(f"\nstep {step}: validation Y-PSNR {json.dumps({k: round(v, 3) for k, v in scores.items()})}"
                  f" (best {'weighted ' if cfg.scale_weights else ''}mean {best_psnr:.3f})", flush=True)
        if dist_info.world > 1:
            torch.distributed.broadcast(psnr, 0)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(psnr.item())

    bar = None
    if progress and dist_info.main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True, mininterval=1.0)
    stop = _StopRequest()
    model.train()
    window_start, window_patches = time.perf_counter(), 0
    window_parts: dict[str, float] = {}   # loss terms summed over the steps since the last log line
    window_steps = 0
    try:
        with stop.installed():
            while step < cfg.steps:
                # The same generator on every rank: each takes its own slice of one global batch.
                indices = patches.sample(rng, cfg.batch * dist_info.world, tuple(cfg.scale_weights))
                transforms = rng.integers(0, 8, size=cfg.batch * dist_info.world)
                mine = slice(dist_info.rank * cfg.batch, (dist_info.rank + 1) * cfg.batch)
                x, y = patches.batch(indices[mine], transforms[mine])
                x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
                alpha = alpha_at(step, alpha_steps)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    output, intermediates = net(x, return_intermediates=True)
                loss, parts = drcn_loss(output, intermediates, y, alpha)
                if not math.isfinite(parts["loss"]):
                    raise DrcnError(f"loss became {parts['loss']} at step {step}: lower --lr or set --clip-grad")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step()
                step += 1
                window_patches += cfg.batch * dist_info.world
                window_steps += 1
                for key, value in parts.items():
                    window_parts[key] = window_parts.get(key, 0.0) + value
                if dist_info.main and (step % cfg.log_every == 0 or step == cfg.steps):
                    rate = window_patches / (time.perf_counter() - window_start)
                    window_start, window_patches = time.perf_counter(), 0
                    means = {key: value / window_steps for key, value in window_parts.items()}
                    window_parts, window_steps = {}, 0
                    lr = optimizer.param_groups[0]["lr"]
                    # Loss terms are means over the logged window (one batch alone is too noisy to read).
                    _append_jsonl(log_path, {"step": step, **means, "alpha": alpha, "lr": lr,
                                             "patches_per_s": rate})
                    if bar is not None:
                        bar.set_postfix(loss=f"{means['loss']:.2e}", alpha=f"{alpha:.2f}", lr=f"{lr:.1e}",
                                        patches_s=f"{rate:.0f}", refresh=False)
                if bar is not None:
                    bar.update(1)
                if step % cfg.val_every == 0 or step == cfg.steps:
                    maybe_validate()
                    window_start, window_patches = time.perf_counter(), 0  # keep validation out of patches/s
                if stop.agreed(dist_info):
                    checkpoint()
                    if dist_info.main:
                        print(f"\ndrcn-train: stopped at step {step}; resume with: "
                              f"drcn-train --resume {ckpt_path}", flush=True)
                    raise KeyboardInterrupt
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint()
                if cfg.snapshot_every and step % cfg.snapshot_every == 0 and dist_info.main:
                    save_weights(out / "snapshots" / f"step-{step:07d}.safetensors", model,
                                 {"step": step, "version": __version__})
    except KeyboardInterrupt:
        if not stop.requested and dist_info.main:  # a second Ctrl-C: the step in flight is lost
            print(f"\ndrcn-train: stopped mid-step; the last checkpoint is {ckpt_path}", flush=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    if dist_info.world > 1:
        _check_ranks_agree(model, dist_info)
    if dist_info.main:
        if not cfg.val:  # nothing to choose the best by: the last weights are the result
            save_weights(best_path, model, {"step": step, "version": __version__})
        plot_curves(log_path, out / "curves.png")
    return best_path
