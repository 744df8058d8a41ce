"""Quantization-aware fine-tuning of an exported INT8 graph, with its fp32 graph as the teacher.

The student is the QDQ graph itself run in PyTorch (:mod:`drcn.train.qat_model`): the per-channel weight scales stay
as NNCF calibrated them (the activation scales too, unless ``learn_scales``), the weights (through their int8 rounding), biases, the float first convolution and the ensemble
weights learn to make the INT8 output match the fp32 graph's on training patches (mean squared difference, Adam,
cosine decay). Every ``eval_every`` steps the student is scored where the export scores INT8 graphs: the Y-PSNR
change against the teacher on calibration images (by default the bundled photos and textures, which are not
training images), at the worst of the model's scales; the best-scoring weights are what is written, and only when
they beat the graph they started from. A checkpoint beside the output lets an interrupted run continue.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drcn import bounded_json, deviation
from drcn.atomic import atomic_output
from drcn.calibration import calibration_pairs
from drcn.deviation import MAX_LEVELS, MAX_SHARE_OVER, OFF_LEVELS, Deviation
from drcn.errors import DrcnError
from drcn.fp16 import change_by_scale, psnr_and_outputs, psnr_by_scale
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import int8_scales, is_int8_of, model_info
from drcn.patches import PatchSpec
from drcn.progress import Progress
from drcn.train.checkpoint import FORMAT as CHECKPOINT_FORMAT, read_checkpoint
from drcn.train.data import PatchSet
from drcn.train.qat_model import GraphNetwork, write_back

RESUME_KEYS = ("config", "student", "optimizer", "schedule", "rng", "step", "history", "start_db", "best",
               "best_params")
EVAL_SIDE = 168      # centre crops of the calibration images, as the runtime's precision check scores them
EVAL_IMAGES = 48     # at most this many of --calib's images (spread over the folders), to bound each evaluation


@dataclasses.dataclass
class QatConfig:
    int8: str                              # the QDQ graph to fine-tune (drcn-export --int8)
    fp32: str                              # the fp32 graph it was quantized from: the teacher
    data: tuple[str, ...]                  # HR training folders (patches, as drcn-train makes them)
    out: str                               # where the fine-tuned INT8 graph goes
    steps: int = 2000
    batch: int = 16
    lr: float = 1e-5
    patch: int = 48
    stride: int = 24
    eval_every: int = 250
    calib: tuple[str, ...] = ()            # folders scored on; () = the bundled photos and textures
    seed: int = 0
    cache_dir: str | None = None
    threads: int = 0                       # torch intra-op threads; 0 = torch's default
    learn_scales: bool = False             # the activation scales learn too (LSQ)
    tail_weight: float = 0.0               # weight of the largest-errors term (0: mean squared difference only)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class QatResult:
    path: Path | None                      # None: the fine-tuned weights did not beat the start; nothing written
    start_db: dict[str, float]             # Y-PSNR change vs fp32 per scale, before
    best_db: dict[str, float]              # ... of the weights written (or the best seen)
    best_step: int
    steps: int
    seconds: float

    @staticmethod
    def worst(change: dict[str, float]) -> float:
        return min(change.values())


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".qat-checkpoint.pt")


def _as_run(network: nn.Module):
    """``network`` as a :data:`drcn.fp16.Run` (numpy in and out), without gradients."""
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network(torch.from_numpy(x)).numpy()

    return run


def _score(network: nn.Module, pairs, reference: dict[float, float]) -> dict[str, float]:
    """Y-PSNR change (dB) of ``network`` against ``reference`` per scale."""
    return change_by_scale(psnr_by_scale(_as_run(network), pairs), reference)


def _rank(change: dict[str, float], deviations: dict[str, Deviation] | None) -> tuple:
    """Smaller is better: first within the per-pixel bound at every scale (when measured), then the least share
    of values off beyond it, then the best worst-scale Y-PSNR change."""
    if not deviations:
        return (0, 0.0, -QatResult.worst(change))
    breaches = [d for d in deviations.values() if d.breach()]
    excess = sum(max(0.0, d.share_over(OFF_LEVELS) - MAX_SHARE_OVER) + max(0, d.max - MAX_LEVELS) * 1e-6
                 for d in breaches)
    return (len(breaches), excess, -QatResult.worst(change))


def tail_loss(student_out: torch.Tensor, target: torch.Tensor, free_levels: float = 2.0) -> torch.Tensor:
    """Mean squared excess of |student - teacher| beyond ``free_levels`` 8-bit levels: zero for the many small
    differences, large for the few values that would land several levels off (a clipped bright detail)."""
    return torch.mean(torch.relu((student_out - target).abs() - free_levels / 255.0) ** 2)


def _check_pair(int8_model, fp32_model, int8_path: str, fp32_path: str) -> None:
    """The runtime's rule for "the INT8 graph of this fp32 graph" (:func:`drcn.onnx_meta.is_int8_of`)."""
    mine, theirs = model_info(fp32_model, fp32_path), model_info(int8_model, int8_path)
    if theirs.precision != "int8":
        raise DrcnError(f"{int8_path}: a {theirs.precision} graph, not an INT8 graph made by drcn-export --int8")
    if mine.precision != "fp32" or mine.kind != "y":
        raise DrcnError(f"--fp32 {fp32_path}: a {mine.precision} {mine.kind} graph; the teacher is the fp32 Y graph")
    if not is_int8_of(theirs, mine):
        raise DrcnError(f"--fp32 {fp32_path}: not the model {int8_path} was quantized from (weights, depth, "
                        "config, scale or self-ensemble differ)")


def fine_tune(cfg: QatConfig, resume: bool = False, progress: bool = True,
              log=lambda line: None) -> QatResult:
    """Fine-tune ``cfg.int8`` against ``cfg.fp32``; write the best weights to ``cfg.out`` (atomically) when they
    beat the start on the calibration images at the worst scale."""
    start_time = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    int8_model, fp32_model = load_onnx(cfg.int8), load_onnx(cfg.fp32)
    _check_pair(int8_model, fp32_model, cfg.int8, cfg.fp32)
    info = model_info(int8_model, cfg.int8)
    # A graph made for some scales (drcn-export --int8's graph per scale) is tuned and scored at those scales only.
    scales = int8_scales(cfg.int8) or tuple(info.config.scales)
    torch.manual_seed(cfg.seed)
    student = GraphNetwork(int8_model, fp32_model, learn_scales=cfg.learn_scales)
    teacher = GraphNetwork(fp32_model).requires_grad_(False)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng(cfg.seed)
    pairs = calibration_pairs(list(cfg.calib) or None, scales, max_side=EVAL_SIDE, max_images=EVAL_IMAGES)
    reference, teacher_outputs = psnr_and_outputs(_as_run(teacher), pairs)
    measure_pixels = cfg.tail_weight > 0

    def evaluate(network):
        if not measure_pixels:
            return _score(network, pairs, reference), None, None
        scores, outputs = psnr_and_outputs(_as_run(network), pairs)
        found = deviation.by_scale(pairs, teacher_outputs, outputs)
        return change_by_scale(scores, reference), found, {k: d.summary() for k, d in found.items()}
    ckpt = checkpoint_path(cfg.out)
    step, history = 0, []
    if resume:
        state = _read_checkpoint(ckpt, cfg)
        student.params.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["rng"]
        step, history = int(state["step"]), list(state["history"])
        start_db, best = state["start_db"], state["best"]
        best_params = state["best_params"]
    else:
        start_db, found, pixels = evaluate(student)
        best = {"step": 0, "change": start_db, "rank": list(_rank(start_db, found)), "pixels": pixels}
        best_params = copy.deepcopy(student.params.state_dict())
        history.append({"step": 0, "change": start_db, "pixels": pixels})
        log(f"drcn-qat: start {_fmt(start_db, found)}")
    patches = PatchSet.from_folders(list(cfg.data), PatchSpec(tuple(scales), cfg.patch, cfg.stride),
                                    Path(cfg.cache_dir) if cfg.cache_dir else None, show_progress=progress)
    loss_sum, loss_count = 0.0, 0
    with Progress("drcn-qat steps", cfg.steps, enabled=progress) as bar:
        bar.count = step
        while step < cfg.steps:
            indices = patches.sample(rng, cfg.batch)
            x, _ = patches.batch(indices, rng.integers(0, 8, size=cfg.batch))
            x = torch.from_numpy(x)
            with torch.no_grad():
                target = teacher(x)
            out = student(x)
            loss = torch.mean((out - target) ** 2)
            if cfg.tail_weight:
                loss = loss + cfg.tail_weight * tail_loss(out, target)
            if not math.isfinite(loss.item()):
                raise DrcnError(f"drcn-qat: the loss became {loss.item()} at step {step}: lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
            bar.update(extra=f"loss {loss_sum / loss_count:.3g}")
            if step % cfg.eval_every == 0 or step == cfg.steps:
                change, found, pixels = evaluate(student)
                history.append({"step": step, "change": change, "loss": loss_sum / loss_count, "pixels": pixels})
                loss_sum, loss_count = 0.0, 0
                rank = list(_rank(change, found))
                if rank < best.get("rank", list(_rank(best["change"], None))):
                    best = {"step": step, "change": change, "rank": rank, "pixels": pixels}
                    best_params = copy.deepcopy(student.params.state_dict())
                log(f"drcn-qat: step {step}: {_fmt(change, found)}; best so far step {best['step']}")
                state = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "student": student.params.state_dict(),
                         "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                         "rng": rng.bit_generator.state, "step": step, "history": history,
                         "start_db": start_db, "best": best, "best_params": best_params}
                with atomic_output(ckpt) as tmp:
                    torch.save(state, tmp)
    seconds = time.perf_counter() - start_time
    if best["step"] == 0:
        return QatResult(None, start_db, best["change"], 0, step, seconds)
    student.params.load_state_dict(best_params)
    tuned = write_back(int8_model, student)
    props = {p.key: p.value for p in int8_model.metadata_props}
    record = bounded_json.loads(props.get("drcn.int8", "{}"), f"{cfg.int8}: metadata drcn.int8")
    record["qat"] = {"steps": step, "best_step": best["step"], "batch": cfg.batch, "lr": cfg.lr,
                     "patch": cfg.patch, "data": [Path(d).name for d in cfg.data],
                     "learned": "weights, biases, float parts" + (", activation scales" if cfg.learn_scales else ""),
                     "teacher": "the fp32 graph (mean squared output difference"
                                + (f" + {cfg.tail_weight:g} x the squared excess beyond 2 levels)" if cfg.tail_weight
                                   else ")"),
                     "pixels_before": history[0].get("pixels"), "pixels_after": best.get("pixels"),
                     "scored_on": ", ".join(Path(c).name for c in cfg.calib) if cfg.calib
                     else "bundled photos and textures (scikit-image)",
                     "change_db_before": start_db, "change_db_after": best["change"],
                     "measured_with": "the graph in PyTorch (fake quantization)", "history": history}
    props["drcn.int8"] = json.dumps(record)
    del tuned.metadata_props[:]
    from onnx import helper, save

    helper.set_model_props(tuned, props)
    with atomic_output(cfg.out) as tmp:
        save(tuned, str(tmp))
    return QatResult(Path(cfg.out), start_db, best["change"], best["step"], step, seconds)


def _fmt(change: dict[str, float], deviations: dict[str, Deviation] | None = None) -> str:
    text = "Y-PSNR change vs fp32 " + " / ".join(f"{k} {v:+.4f}" for k, v in change.items()) + " dB"
    if deviations:
        text += "; per pixel " + " / ".join(f"{k} max {d.max}, {100 * d.share_over(OFF_LEVELS):.4f}% > "
                                            f"{OFF_LEVELS}" for k, d in deviations.items())
    return text


def _read_checkpoint(path: Path, cfg: QatConfig) -> dict:
    """The checkpoint of a run with this configuration, read as drcn-train's are (tensors and plain values only)."""
    if not path.is_file():
        raise DrcnError(f"--resume: no checkpoint {path} (a run writes it every --eval-every steps)")
    state = read_checkpoint(path, "--resume", needs=RESUME_KEYS)
    stored = state["config"]
    for key in ("int8", "fp32", "patch", "batch", "learn_scales", "tail_weight"):
        if stored.get(key) != getattr(cfg, key):
            raise DrcnError(f"--resume {path}: it was made with {key} {stored.get(key)}, not {getattr(cfg, key)}")
    return state
