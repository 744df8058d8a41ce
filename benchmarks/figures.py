"""Figures for the docs, drawn from what the code plans and what was measured, never by hand (``drcn-bench figure``):

- ``tiles``: the windows and tiles :func:`drcn.runtime.tiling.plan` cuts a frame into;
- ``deviation``: per precision, the map of each output pixel's distance from fp32 (8-bit levels) on one image, and
  a log-scale histogram of those distances against the per-pixel bound;
- ``segments``: a video's keyframes and the segments :func:`drcn.runtime.media.segments.plan` cuts it into;
- ``jobs``: a ``drcn-bench jobs`` record (JSON): a job's frames/s against drcn-run, and image latency beside a job;
- ``paths``: the stages of the host and the device path, with the host work per frame and the frames/s measured.

Each takes a typed request and writes one PNG atomically; the caller prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from drcn.plotting import pyplot, save_figure


@dataclasses.dataclass(frozen=True)
class TilesRequest:
    output: Path
    size: tuple[int, int] = (360, 640)     # the output frame, (height, width)
    tile: int = 256
    halo: int = 13


def tiles(request: TilesRequest) -> dict:
    """Draw the frame's tiles (each a colour) and their windows (dashed, tile + 2 x halo, shifted inward at the
    borders). Returns {tiles, window: (h, w), computed_share}: how much more than the frame the windows compute."""
    from matplotlib.patches import Rectangle

    from drcn.runtime.tiling import plan

    height, width = request.size
    (wh, ww), windows = plan(height, width, request.tile, request.halo)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 8 * height / width + 0.6))
    ax.add_patch(Rectangle((0, 0), width, height, fill=False, lw=2, color="black"))
    colours = plt.get_cmap("tab10").colors
    for i, w in enumerate(windows):
        colour = colours[i % len(colours)]
        ax.add_patch(Rectangle((w.ox0, w.oy0), w.ox1 - w.ox0, w.oy1 - w.oy0, color=colour, alpha=0.35))
        ax.add_patch(Rectangle((w.x0, w.y0), ww, wh, fill=False, ls="--", lw=1.2, color=colour))
        ax.text((w.ox0 + w.ox1) / 2, (w.oy0 + w.oy1) / 2, f"tile {i + 1}\n{w.ox1 - w.ox0}x{w.oy1 - w.oy0}",
                ha="center", va="center", fontsize=9)
    ax.set_xlim(-4, width + 4)
    ax.set_ylim(height + 4, -4)
    ax.set_aspect("equal")
    share = len(windows) * wh * ww / (height * width)
    ax.set_title(f"{width}x{height}, --tile {request.tile}, halo {request.halo}: {len(windows)} tiles (filled), "
                 f"windows {ww}x{wh} (dashed); {share:.2f}x the frame computed", fontsize=10)
    fig.tight_layout()
    save_figure(fig, request.output)
    return {"tiles": len(windows), "window": (wh, ww), "computed_share": round(share, 3)}


@dataclasses.dataclass(frozen=True)
class DeviationRequest:
    image: Path                              # a high-resolution image: shrunk by the scale, then upscaled
    output: Path
    precisions: tuple[str, ...] = ("bf16", "int8")
    scale: float = 2.0
    model: str | None = None                 # an ONNX file (default: the shipped model)
    bound_levels: int = 4                    # the per-pixel bound: at most 0.01% of values more than this off
    worst_levels: int = 12                   # and none more than this


def deviation(request: DeviationRequest) -> dict:
    """Upscale the image with OpenVINO at fp32 and at each precision; draw each one's |difference| map in 8-bit
    levels and the histogram of those levels (log scale) with the bound. Returns, per precision that ran,
    {max, share_over_bound} (share in %), and the precisions this CPU lacks with why."""
    from drcn import matlab
    from drcn.errors import DrcnError
    from drcn.images import read_image
    from drcn.runtime.api import Upscaler

    hr = read_image(request.image)
    hr = matlab.modcrop(hr[:, :, :3] if hr.ndim == 3 else hr, int(np.ceil(request.scale)))
    lr = matlab.imresize(hr, 1 / request.scale)

    def run(precision: str) -> np.ndarray:
        with Upscaler(request.model, scale=request.scale, backend="openvino", precision=precision) as upscaler:
            out = upscaler.upscale(lr)
        return out.astype(np.float64) / (257 if out.dtype == np.uint16 else 1)

    reference = run("fp32")
    found, missing = {}, {}
    for precision in request.precisions:
        try:
            diff = np.abs(run(precision) - reference)
            found[precision] = diff.max(axis=-1) if diff.ndim == 3 else diff     # the worst channel of a pixel
        except DrcnError as exc:
            missing[precision] = str(exc).splitlines()[0]
    if not found:
        raise DrcnError(f"none of the precisions {', '.join(request.precisions)} runs on this CPU: "
                        + "; ".join(f"{p}: {why}" for p, why in missing.items()))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(found) + 1, figsize=(max(9.0, 4.6 * (len(found) + 1)), 4.8), layout="constrained")
    summary = {}
    for ax, (precision, diff) in zip(axes, found.items()):
        shown = ax.imshow(diff, cmap="magma", vmin=0, vmax=request.bound_levels + 2)
        over = 100 * float((diff > request.bound_levels).mean())
        summary[precision] = {"max": float(diff.max()), "share_over_bound": over}
        ax.set_title(f"{precision}: max {diff.max():.0f} levels, {over:.4f}% > {request.bound_levels}", fontsize=9)
        ax.axis("off")
    fig.colorbar(shown, ax=axes[:-1], shrink=0.8, label="|difference from fp32| (8-bit levels)")
    hist = axes[-1]
    edges = np.arange(0, max(request.worst_levels, max(d.max() for d in found.values())) + 2) - 0.5
    for precision, diff in found.items():
        hist.hist(diff.ravel(), bins=edges, histtype="step", lw=1.5, label=precision, log=True)
    hist.axvline(request.bound_levels + 0.5, color="grey", ls="--", lw=1)
    hist.axvline(request.worst_levels + 0.5, color="red", ls="--", lw=1)
    hist.set_xlabel("|difference from fp32| (8-bit levels)")
    hist.set_ylabel("values (log)")
    hist.set_title(f"bound: <= 0.01% over {request.bound_levels}, none over {request.worst_levels}", fontsize=9)
    hist.legend(fontsize=8)
    from drcn.benchmarks.machine import facts

    machine = facts()
    fig.suptitle(f"{request.image.name} x{request.scale:g}, each precision against fp32\nOpenVINO "
                 f"{machine['libraries'].get('openvino', '')} on {machine['cpu']}, {machine['isa']}", fontsize=10)
    save_figure(fig, request.output)
    return {"precisions": summary, "not_run": missing}


@dataclasses.dataclass(frozen=True)
class SegmentsRequest:
    video: Path
    output: Path
    segment: float = 10.0


def segments(request: SegmentsRequest) -> dict:
    """Draw the video's frames on its timeline, its keyframes, and the segments drcn-run cuts it into at
    ``segment`` seconds (a segment that starts between keyframes is decoded from the keyframe before it)."""
    from drcn.runtime.media.segments import plan
    from drcn.runtime.media.timeline import scan

    timeline = scan(request.video)
    if timeline.ordered:
        from drcn.errors import DrcnError

        raise DrcnError(f"{request.video}: its frames are cut by position ({timeline.ordered}), not by time: no "
                        "timeline to draw")
    cut = plan(timeline, request.segment)
    seconds = [timeline.seconds(p) for p in timeline.pts]
    keys = sorted(timeline.seconds(p) for p in timeline.keyframes)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 2.6))
    colours = plt.get_cmap("tab10").colors
    end_of = seconds[-1] + (seconds[-1] - seconds[-2] if len(seconds) > 1 else 0.04)
    for s in cut:
        start = timeline.seconds(s.start)
        end = timeline.seconds(s.end) if s.end is not None else end_of
        ax.barh(1, end - start, left=start, height=0.5, color=colours[s.index % len(colours)], alpha=0.7)
        ax.text((start + end) / 2, 1, f"{s.index + 1}: {s.frames} frames" + ("" if s.keyframe else "\n(mid-GOP)"),
                ha="center", va="center", fontsize=8)
    ax.vlines(seconds, 0.1, 0.4, color="grey", lw=0.3)
    ax.vlines(keys, 0.0, 0.55, color="black", lw=1.5)
    ax.set_yticks([0.3, 1], ["frames (keyframes\nin black)", "segments"])
    ax.set_xlabel("seconds")
    ax.set_ylim(-0.1, 1.4)
    ax.set_title(f"{request.video.name}: {len(seconds)} frames, {len(keys)} keyframes, --segment "
                 f"{request.segment:g} -> {len(cut)} segments", fontsize=10)
    fig.tight_layout()
    save_figure(fig, request.output)
    return {"frames": len(seconds), "keyframes": len(keys), "segments": len(cut),
            "mid_gop": sum(not s.keyframe for s in cut)}


@dataclasses.dataclass(frozen=True)
class JobsRequest:
    record: Path            # drcn-bench jobs --json
    output: Path


def jobs(request: JobsRequest) -> dict:
    """Draw a ``drcn-bench jobs`` record: frames/s of drcn-run, of a job, of a job killed at half; 256x256 image
    latency p50 / p99, idle and beside a running job."""
    record = json.loads(Path(request.record).read_text())
    frames = record["frames"]
    rates = {"drcn-run": frames / record["drcn_run_s"], "job": frames / record["job_s"],
             "job killed at half\n(job time)": frames / record["killed_job_s"]}
    idle, beside = np.array(record["image_idle_s"]) * 1000, np.array(record["image_beside_job_s"]) * 1000
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.bar(list(rates), list(rates.values()), color=["grey", "tab:blue", "tab:orange"])
    for i, value in enumerate(rates.values()):
        left.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=9)
    left.set_ylabel("frames/s")
    left.set_title(f"one clip, {frames} frames", fontsize=10)
    x = np.arange(2)
    right.bar(x - 0.2, [np.percentile(idle, 50), np.percentile(beside, 50)], 0.4, label="p50")
    right.bar(x + 0.2, [np.percentile(idle, 99), np.percentile(beside, 99)], 0.4, label="p99")
    right.set_xticks(x, ["idle", "a job running"])
    right.set_ylabel("ms")
    right.set_title("256x256 x2 image requests", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle(f"drcn-serve video jobs on {record.get('cpu', 'this CPU')}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, request.output)
    return {"job_vs_drcn_run": round(rates["job"] / rates["drcn-run"], 3)}


@dataclasses.dataclass(frozen=True)
class PathsRequest:
    host: Path              # drcn-bench latency --host ... --json: host work per frame per path
    paths: Path             # drcn-bench paths --json: frames/s per path through the pipeline
    output: Path


HOST_STAGES = (("decode", "host"), ("RGB -> YCbCr", "host"), ("bicubic", "host"), ("Y network", "backend"),
               ("YCbCr -> RGB", "host"), ("encode", "host"))
DEVICE_STAGES = (("decode", "host"), ("colour, bicubic,\nY network, colour back\n(one frame graph)", "backend"),
                 ("encode", "host"))


def paths(request: PathsRequest) -> dict:
    """Draw the two paths a frame can take (which stages run on the host and which on the backend), each with its
    measured host work per frame, and the frames/s each gave through the pipeline."""
    from matplotlib.patches import FancyBboxPatch

    host = {r["path"]: r for r in json.loads(Path(request.host).read_text())}
    runs = {r["path"]: r for r in json.loads(Path(request.paths).read_text())}
    plt = pyplot()
    fig, (lanes, bars) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    colours = {"host": "tab:orange", "backend": "tab:blue"}
    for row, (name, stages) in enumerate((("host", HOST_STAGES), ("device", DEVICE_STAGES))):
        y = 1 - row
        width = 6.0 / len(stages)
        for i, (label, where) in enumerate(stages):
            lanes.add_patch(FancyBboxPatch((i * width + 0.05, y - 0.3), width - 0.1, 0.6,
                                           boxstyle="round,pad=0.02", color=colours[where], alpha=0.35))
            lanes.text(i * width + width / 2, y, label, ha="center", va="center", fontsize=8)
        measured = host.get(name)
        shown = (f"{measured['host_ms']:.0f} ms of host work per {measured['frame']} frame" if measured else "")
        lanes.text(-0.1, y, f"{name} path\n{shown}", ha="right", va="center", fontsize=9)
    lanes.set_xlim(-2.6, 6.1)
    lanes.set_ylim(-0.5, 1.5)
    lanes.axis("off")
    lanes.set_title("orange: host (numpy, FFmpeg); blue: the backend", fontsize=9)
    labels, values = [], []
    for name in ("host", "device"):
        if name in runs:
            labels.append(f"{name}\npath")
            values.append(runs[name]["fps"])
    if "network_fps" in runs.get("device", {}):
        labels.append("network\nalone")
        values.append(runs["device"]["network_fps"])
    bars.bar(labels, values, color=["tab:orange", "tab:blue", "grey"][:len(values)])
    for i, value in enumerate(values):
        bars.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=9)
    frame = next(iter(runs.values()))["frame"] if runs else ""
    bars.set_title(f"frames/s, {frame}", fontsize=9)
    cpu = next(iter(runs.values()), {}).get("env", {}).get("cpu", "")
    fig.suptitle(f"The host and the device path (measured on {cpu})" if cpu else "The host and the device path",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, request.output)
    return {path: round(r["fps"], 3) for path, r in runs.items()}
