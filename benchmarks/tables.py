"""Plain-text and Markdown tables for benchmark results."""

from __future__ import annotations


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plain(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)) for r in [headers, *rows]) + "\n"


def quality_rows(results: dict, reference: str | None, timed: bool = False) -> tuple[list[str], list[list[str]]]:
    """results[method]["x2"][dataset] = {"psnr", "ssim", "images"[, "seconds"]} -> paper-style rows (dataset x
    scale); ``timed``: each cell also says the seconds the method took on that set (the cost beside the gain)."""
    methods = list(results)
    scales = list(next(iter(results.values())))
    datasets = list(next(iter(next(iter(results.values())).values())))
    headers = ["dataset", "scale", *(m + (f" (Δ vs {reference})" if reference and m != reference
                                           and m != "bicubic" else "") for m in methods)]
    rows = []
    for dataset in datasets:
        for scale in scales:
            row = [dataset, scale]
            for m in methods:
                cell = results[m][scale][dataset]
                text = f"{cell['psnr']:.3f} / {cell['ssim']:.4f}"
                if reference and m not in (reference, "bicubic"):
                    text += f" ({cell['psnr'] - results[reference][scale][dataset]['psnr']:+.4f})"
                if "precision" in cell:
                    text += f" [{cell['precision']}]"
                if timed and "seconds" in cell:
                    text += f", {cell['seconds']:.1f} s"
                row.append(text)
            rows.append(row)
    return headers, rows


def pixel_rows(results: dict, reference: str) -> tuple[list[str], list[list[str]]]:
    """The per-pixel deviation of each method's 8-bit Y output from ``reference``'s (cells that carry "pixels"):
    max, 99.99th percentile, share of values more than 1 and more than 4 levels off."""
    headers = ["method", "dataset", "scale", "max", "p99.99", "> 1 level", "> 4 levels"]
    rows = []
    for method, by_scale in results.items():
        for scale, by_dataset in by_scale.items():
            for dataset, cell in by_dataset.items():
                pixels = cell.get("pixels")
                if pixels is not None:
                    rows.append([method, dataset, scale, pixels["max"], pixels["p99.99"], f"{pixels['over1_pct']:.3f}%",
                                 f"{pixels['over4_pct']:.4f}%"])
    return headers, rows
