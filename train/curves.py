"""PNG plot of a run's metrics log: training loss and validation PSNR against step."""

from __future__ import annotations

import json
from pathlib import Path

from drcn.plotting import pyplot, save_figure


def _smooth(values: list[float], window: int = 0) -> list[float]:
    """Trailing moving average (window: 1/20 of the points by default) for a readable trend line."""
    window = window or max(1, len(values) // 20)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(log_path: Path, png_path: Path) -> None:
    if not log_path.is_file():
        return
    plt = pyplot()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_psnr" in r]
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        ax_loss.semilogy(steps, [r["loss"] for r in train], color="tab:blue", alpha=0.25, linewidth=0.8)
        ax_loss.semilogy(steps, _smooth([r["loss"] for r in train]), color="tab:blue", label="loss")
        ax_loss.semilogy(steps, _smooth([r["mse_ensemble"] for r in train]), color="tab:orange",
                         label="MSE of the ensemble")
        ax_loss.legend()
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss")
    if val:
        for key in val[-1]["val_psnr"]:
            pts = [(r["step"], r["val_psnr"][key]) for r in val if key in r["val_psnr"]]
            ax_psnr.plot(*zip(*pts), marker="o", label=key)
        ax_psnr.legend()
    ax_psnr.set(xlabel="step", ylabel="Y-PSNR (dB)", title="validation")
    fig.tight_layout()
    save_figure(fig, png_path, dpi=100)
