"""The DRCN training loop: one process or data-parallel under torchrun, resumable at any step.

``train()`` reads top to bottom in one sitting: a :class:`Trainer` is set up (devices, model, optimiser), restores
a checkpoint or initial weights, prepares the patches, then repeats its named steps -- ``step`` (one optimiser
step), ``log``, ``validate``, ``checkpoint`` -- until done or asked to stop. Only rank 0 writes files; every rank
holds identical weights. Devices and precision: :mod:`drcn.train.distributed`; Ctrl-C: :mod:`drcn.train.stop`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drcn import __version__
from drcn.config import ModelConfig
from drcn.devices import torch_device
from drcn.errors import DrcnError
from drcn.model import DRCN
from drcn.train.checkpoint import load_checkpoint, save_checkpoint
from drcn.train.data import PatchSet, PatchSpec
from drcn.train.distributed import any_rank, check_ranks_agree, pick_device, pick_precision, setup_distributed
from drcn.train.objective import alpha_at, drcn_loss
from drcn.train.stop import StopRequest
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
    from drcn.evaluation import evaluate, folder_dataset, summarise

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


class Trainer:
    """One training run's state and its named steps; ``train()`` below strings them together."""

    def __init__(self, model_config: ModelConfig, cfg: TrainConfig, progress: bool = True):
        self.model_config, self.cfg = model_config, cfg
        self.dist = setup_distributed("cuda" if torch_device(cfg.device).startswith("cuda") else "cpu")
        self.device = pick_device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # every step has the same shapes
        self.amp_dtype = pick_precision(cfg.precision, self.device)
        self.out = Path(cfg.out)
        self.ckpt_path, self.best_path = self.out / "checkpoint.pt", self.out / "best.safetensors"
        self.log_path = self.out / "metrics.jsonl"
        self.show_progress = progress and self.dist.main

        torch.manual_seed(cfg.seed)
        self.model = DRCN(model_config).to(self.device)
        self.net: nn.Module = self.model
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.rng = np.random.default_rng(cfg.seed)
        self.step_count, self.best_psnr = 0, -math.inf
        self.alpha_steps = cfg.alpha_steps or cfg.steps // 2
        self.patches: PatchSet | None = None
        self._window = {"start": time.perf_counter(), "patches": 0, "steps": 0, "parts": {}}

    # -- set-up ------------------------------------------------------------------------------------------------
    def restore(self, resume: str | None) -> None:
        """Continue from a checkpoint (exactly: weights, optimiser, schedule, RNG) or start from --init weights."""
        if self.cfg.init and not resume:
            from drcn.weights import load_model

            self.model.load_state_dict(load_model(self.cfg.init).state_dict())
        if not resume:
            return
        state = load_checkpoint(resume, self.model_config)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        self.step_count, self.best_psnr = state["step"], state["best_psnr"]
        if self.dist.main:
            _truncate_log(self.log_path, self.step_count)

    def prepare(self) -> None:
        """Patches (cached), the data-parallel wrapper, and the run's description in OUT/train_config.json."""
        cfg = self.cfg
        self.patches = PatchSet.from_folders(list(cfg.data), PatchSpec(tuple(cfg.scales), cfg.patch, cfg.stride),
                                             Path(cfg.cache_dir) if cfg.cache_dir else None,
                                             show_progress=self.show_progress)
        if self.dist.world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if self.dist.main:
            precision = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32"
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.json").write_text(json.dumps(
                {"model": self.model_config.to_dict(), "train": cfg.to_dict(), "world_size": self.dist.world,
                 "precision": str(self.amp_dtype or "fp32"), "device": str(self.device),
                 "patches": len(self.patches)}, indent=2))
            print(f"drcn-train: {len(self.patches)} patches, {self.model_config.num_parameters} parameters, device "
                  f"{self.device}, precision {precision}, {self.dist.world} process(es), steps "
                  f"{self.step_count}->{cfg.steps}", flush=True)

    # -- the named steps ---------------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One optimiser step on one global batch; returns the loss terms."""
        cfg, world, rank = self.cfg, self.dist.world, self.dist.rank
        # The same generator on every rank: each takes its own slice of one global batch.
        indices = self.patches.sample(self.rng, cfg.batch * world, tuple(cfg.scale_weights))
        transforms = self.rng.integers(0, 8, size=cfg.batch * world)
        mine = slice(rank * cfg.batch, (rank + 1) * cfg.batch)
        x, y = self.patches.batch(indices[mine], transforms[mine])
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        alpha = alpha_at(self.step_count, self.alpha_steps)
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            output, intermediates = self.net(x, return_intermediates=True)
        loss, parts = drcn_loss(output, intermediates, y, alpha)
        if not math.isfinite(parts["loss"]):
            raise DrcnError(f"loss became {parts['loss']} at step {self.step_count}: lower --lr or set --clip-grad")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        self.step_count += 1
        return {**parts, "alpha": alpha}

    def log(self, parts: dict[str, float], bar=None) -> None:
        """Accumulate the loss terms; every --log-every steps write their means (one batch is too noisy)."""
        w, cfg = self._window, self.cfg
        alpha = parts.pop("alpha")
        w["patches"] += cfg.batch * self.dist.world
        w["steps"] += 1
        for key, value in parts.items():
            w["parts"][key] = w["parts"].get(key, 0.0) + value
        if self.dist.main and (self.step_count % cfg.log_every == 0 or self.step_count == cfg.steps):
            rate = w["patches"] / (time.perf_counter() - w["start"])
            means = {key: value / w["steps"] for key, value in w["parts"].items()}
            self._restart_window()
            lr = self.optimizer.param_groups[0]["lr"]
            _append_jsonl(self.log_path, {"step": self.step_count, **means, "alpha": alpha, "lr": lr,
                                          "patches_per_s": rate})
            if bar is not None:
                bar.set_postfix(loss=f"{means['loss']:.2e}", alpha=f"{alpha:.2f}", lr=f"{lr:.1e}",
                                patches_s=f"{rate:.0f}", refresh=False)

    def _restart_window(self) -> None:
        self._window.update(start=time.perf_counter(), patches=0, steps=0, parts={})

    def validate(self) -> None:
        """Validation PSNR on rank 0, best weights kept; every rank steps a plateau schedule with it."""
        from drcn.train.curves import plot_curves

        cfg = self.cfg
        if cfg.val:
            psnr = torch.zeros(1)
            if self.dist.main:
                scores = validate(self.model, cfg.val, cfg.scales, self.device)
                psnr[0] = selection_psnr(scores, cfg.scale_weights)
                _append_jsonl(self.log_path, {"step": self.step_count, "val_psnr": scores})
                if psnr.item() > self.best_psnr:
                    self.best_psnr = psnr.item()
                    save_weights(self.best_path, self.model, {"step": self.step_count,
                                                              "val_psnr": json.dumps(scores),
                                                              "version": __version__})
                plot_curves(self.log_path, self.out / "curves.png")
                print(f"\nstep {self.step_count}: validation Y-PSNR "
                      f"{json.dumps({k: round(v, 3) for k, v in scores.items()})} (best "
                      f"{'weighted ' if cfg.scale_weights else ''}mean {self.best_psnr:.3f})", flush=True)
            if self.dist.world > 1:
                torch.distributed.broadcast(psnr, 0)
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(psnr.item())
        self._restart_window()  # keep validation out of patches/s

    def checkpoint(self) -> None:
        if self.dist.main:
            save_checkpoint(self.ckpt_path, model_config=self.model_config, train_config=self.cfg,
                            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                            scaler=self.scaler, step=self.step_count, best_psnr=self.best_psnr,
                            rng={"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()})

    def snapshot(self) -> None:
        if self.dist.main:
            save_weights(self.out / "snapshots" / f"step-{self.step_count:07d}.safetensors", self.model,
                         {"step": self.step_count, "version": __version__})

    def finish(self) -> Path:
        """Check the replicas agree; without validation the last weights are the result."""
        from drcn.train.curves import plot_curves

        if self.dist.world > 1:
            check_ranks_agree(self.model, self.dist)
        if self.dist.main:
            if not self.cfg.val:
                save_weights(self.best_path, self.model, {"step": self.step_count, "version": __version__})
            plot_curves(self.log_path, self.out / "curves.png")
        return self.best_path

    def due(self, every: int) -> bool:
        """True every ``every`` steps and at the last step (``every`` 0: never)."""
        return bool(every) and (self.step_count % every == 0 or self.step_count == self.cfg.steps)


def train(model_config: ModelConfig, cfg: TrainConfig, resume: str | None = None,
          progress: bool = True) -> Path:
    """Train; returns the path of the best weights (``OUT/best.safetensors``)."""
    run = Trainer(model_config, cfg, progress)
    run.restore(resume)
    run.prepare()
    bar = None
    if run.show_progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=run.step_count, unit="step", dynamic_ncols=True, mininterval=1.0)
    stop = StopRequest()
    run.model.train()
    try:
        with stop.installed():
            while run.step_count < cfg.steps:
                run.log(run.step(), bar)
                if bar is not None:
                    bar.update(1)
                if run.due(cfg.val_every):
                    run.validate()
                if any_rank(stop.requested, run.dist):  # the ranks agree on the step to stop at
                    run.checkpoint()
                    if run.dist.main:
                        print(f"\ndrcn-train: stopped at step {run.step_count}; resume with: "
                              f"drcn-train --resume {run.ckpt_path}", flush=True)
                    raise KeyboardInterrupt
                if run.due(cfg.checkpoint_every):
                    run.checkpoint()
                if cfg.snapshot_every and run.step_count % cfg.snapshot_every == 0:
                    run.snapshot()
    except KeyboardInterrupt:
        if not stop.requested and run.dist.main:  # a second Ctrl-C: the step in flight is lost
            print(f"\ndrcn-train: stopped mid-step; the last checkpoint is {run.ckpt_path}", flush=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return run.finish()
