"""PNG figures for benchmark results (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

from drcn.plotting import pyplot, save_figure


def recursion_figure(records: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    depths = [r["depth"] for r in records]
    ax.plot(depths, [r["psnr"] for r in records], "o-", color="tab:blue")
    ax.set(xlabel="recursions d (exported with --depth d)",
           ylabel=f"Y-PSNR (dB), {records[0]['dataset']} x{records[0]['scale']:g}",
           title="Recursion versus performance")
    ax2 = ax.twinx()
    ax2.plot(depths, [r["median_ms"] for r in records], "s--", color="tab:orange")
    ax2.set_ylabel(f"latency per {records[0]['tile']}² tile (ms)", color="tab:orange")
    fig.tight_layout()
    save_figure(fig, path)


def psnr_latency_figure(records: list[dict], path: Path) -> None:
    """One point per backend/precision/depth/ensemble: x = ms per tile, y = PSNR (axis at least 0.2 dB tall, no offset
    notation, so equal PSNRs look equal)."""
    plt = pyplot()
    points = [r for r in records if r.get("psnr") is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, r in enumerate(points):
        ax.scatter(r["median_ms"], r["psnr"], s=40)
        label = f"{r['backend']} {r['precision']}" + (f" d{r['depth']}" if r.get("depth") else "") + (
            f" x{r['ensemble']} ens." if r.get("ensemble", 1) > 1 else "")
        ax.annotate(label, (r["median_ms"], r["psnr"]), textcoords="offset points",
                    xytext=(5, 6 + 11 * (i % 3)), fontsize=8)
    if points:
        values = [r["psnr"] for r in points]
        middle, half = (max(values) + min(values)) / 2, max(0.1, (max(values) - min(values)) * 0.6)
        ax.set_ylim(middle - half, middle + half)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.yaxis.set_major_formatter(plt.FormatStrFormatter("%.3f"))
    ax.set(xlabel=f"latency per {records[0]['tile']}² tile (ms, median)", ylabel="Y-PSNR (dB)",
           title="Quality versus latency: backend, precision, depth, self-ensemble")
    fig.tight_layout()
    save_figure(fig, path)
