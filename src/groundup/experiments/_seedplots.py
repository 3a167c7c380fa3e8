"""Seed-to-seed spread figures: curves as mean ± std bands and the metric table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from groundup.plotting import pyplot, save_figure


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.3g}"
    return f"{value:.4f}"


def plot_bands(payload: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    bands = payload["bands"]
    count = len(bands)
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, (panel, spec) in zip(axes.flat, bands.items(), strict=False):
        for i, (label, band) in enumerate(spec["series"].items()):
            mean = np.array([np.nan if v is None else v for v in band["mean"]], dtype=float)
            std = np.array([0.0 if v is None else v for v in band["std"]], dtype=float)
            low = np.array([np.nan if v is None else v for v in band["min"]], dtype=float)
            high = np.array([np.nan if v is None else v for v in band["max"]], dtype=float)
            x = spec.get("x") or list(range(1, len(mean) + 1))
            x = np.asarray(x[:len(mean)], dtype=float)
            color = f"C{i}"
            ax.plot(x, mean, color=color, label=label, linewidth=1.3)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
            ax.plot(x, low, color=color, linestyle=":", linewidth=0.7)
            ax.plot(x, high, color=color, linestyle=":", linewidth=0.7)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(spec.get("xlabel", ""), fontsize=8)
        ax.set_ylabel(spec.get("ylabel", ""), fontsize=8)
        if spec.get("ylim"):
            ax.set_ylim(*spec["ylim"])
        if spec.get("logy"):
            ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(spec["series"]) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    seeds = payload["seeds"]
    fig.suptitle(f"{payload['experiment']}: mean ± 1 std over {len(seeds)} seeds "
                 f"({seeds[0]}–{seeds[-1]}); dotted: min and max", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_table(payload: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    summary = payload["summary"]
    rows = [[key, _fmt(s["mean"]), _fmt(s["std"]), _fmt(s["min"]), _fmt(s["max"])]
            for key, s in summary.items()]
    height = 0.7 + 0.2 * (len(rows) + 1)
    fig, ax = plt.subplots(figsize=(8.5, height))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=["metric", "mean", "std", "min", "max"],
                     loc="upper center", cellLoc="right", colLoc="right",
                     colWidths=[0.48, 0.13, 0.13, 0.13, 0.13])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, c), cell in table.get_celld().items():
        if c == 0:
            cell.set_text_props(ha="left")
            cell._loc = "left"
        if r == 0:
            cell.set_text_props(weight="bold")
    ax.set_title(f"{payload['experiment']}: {len(payload['seeds'])} seeds "
                 f"({', '.join(map(str, payload['seeds']))})", fontsize=10)
    return save_figure(fig, path)


def plot_seeds(payload: dict[str, Any], out_dir: Path) -> list[Path]:
    paths = [plot_table(payload, out_dir / "seeds_table.png")]
    if payload.get("bands"):
        paths.append(plot_bands(payload, out_dir / "seeds_bands.png"))
    return paths
