"""Figures (matplotlib, Agg backend, saved to files; never shown unless asked)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from groundup import _files


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a one-line error naming the extra."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise RuntimeError("figures need matplotlib: pip install 'groundup[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Save atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    kind = path.suffix.lstrip(".").lower() or "png"
    try:
        return _files.atomic_write(
            path, lambda fh: fig.savefig(fh, format=kind, dpi=110, bbox_inches="tight"),
            owner="figure")
    finally:
        pyplot().close(fig)


def training_curves(history: dict[str, list[float]], path: str | os.PathLike,
                    title: str = "") -> Path:
    """Loss (train batches vs validation) and accuracy (train vs validation vs test) per epoch."""
    plt = pyplot()
    epochs = history.get("epoch", list(range(1, len(history.get("loss", [])) + 1)))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["loss"], marker="o", label="train (mean batch loss)")
    if "val_loss" in history:
        ax_loss.plot(epochs, history["val_loss"], marker="s", linestyle="--", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    styles = {"train_accuracy": ("o", "-", "train"), "val_accuracy": ("s", "--", "validation"),
              "test_accuracy": ("^", ":", "test")}
    for key, (marker, line, label) in styles.items():
        if key in history:
            ax_acc.plot(epochs, history[key], marker=marker, linestyle=line, label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.0)
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
