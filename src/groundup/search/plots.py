"""Search figures: the book's Best-N grid and the score over a plane of two parameters."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from groundup._checks import check_number, suggest, value_error
from groundup.search.result import SearchResult
from groundup.search.space import OWNER


def plot_best_n(result: SearchResult, path: str | os.PathLike, n: int = 20,
                columns: int = 5) -> Path:
    """The book's figure: the ``n`` best trials' accuracy per epoch, validation solid and
    training dashed, one small panel each titled ``Best-k`` with its score and params."""
    from groundup.plotting import pyplot, save_figure

    check_number(OWNER, "n", n, low=1, integer=True)
    ranked = result.ranked(("COMPLETE", "PRUNED"))[:n]
    if not ranked:
        raise value_error(OWNER, "result", "a search with at least one finished trial",
                          "=no COMPLETE or PRUNED trial")
    plt = pyplot()
    rows = math.ceil(len(ranked) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.1 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(ranked):
            ax.axis("off")
            continue
        trial = ranked[i]
        val = trial["history"]["val_accuracy"]
        train = trial["history"]["train_accuracy"]
        epochs = np.arange(1, len(val) + 1)
        ax.plot(epochs, val, "-", color="C0", label="val")
        ax.plot(epochs, train, "--", color="C1", label="train")
        ax.set_ylim(0.0, 1.0)
        ax.set_xlim(1, max(result.settings.get("epochs", len(val)), 2))
        label = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in trial["params"].items())
        pruned = " (pruned)" if trial["state"] == "PRUNED" else ""
        ax.set_title(f"Best-{i + 1}: {trial['score']:.2f}{pruned}", fontsize=8)
        ax.text(0.03, 0.97, label, transform=ax.transAxes, fontsize=5, va="top")
        if i % columns:
            ax.set_yticks([])
        ax.set_xticks([])
    axes.flat[0].legend(loc="lower right", fontsize=6)
    fig.suptitle(f"Best-{len(ranked)} trials: validation (solid) and training (dashed) "
                 "accuracy per epoch", fontsize=9)
    # keep a band of 0.35 inches at the top for the overall title, above the panel titles
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return save_figure(fig, path)


def plot_score_plane(result: SearchResult, path: str | os.PathLike, x: str = "lr",
                     y: str = "weight_decay") -> Path:
    """Every trial as a point at its (``x``, ``y``) values coloured by score (log axes for
    log-uniform parameters); the best trial is starred, pruned ones drawn hollow."""
    from groundup.plotting import pyplot, save_figure

    for arg, name in (("x", x), ("y", y)):
        if name not in result.space.params:
            raise value_error(OWNER, arg, "a parameter of the search space", name,
                              suggest(name, result.space.params))
    done = [t for t in result.trials if t["state"] in ("COMPLETE", "PRUNED")
            and x in t["params"] and y in t["params"]]
    if not done:
        raise value_error(OWNER, "result", "a search with at least one finished trial",
                          "=no COMPLETE or PRUNED trial")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.8))
    xs = np.array([float(t["params"][x]) for t in done])
    ys = np.array([float(t["params"][y]) for t in done])
    scores = np.array([t["score"] for t in done])
    full = np.array([t["state"] == "COMPLETE" for t in done])
    points = ax.scatter(xs[full], ys[full], c=scores[full], cmap="viridis", vmin=0, vmax=1,
                        s=30, edgecolors="k", linewidths=0.3, label="complete")
    if (~full).any():
        ax.scatter(xs[~full], ys[~full], facecolors="none", edgecolors="grey", s=30,
                   linewidths=0.8, label="pruned")
    best = result.best
    if best is not None:
        ax.scatter([best["params"][x]], [best["params"][y]], marker="*", s=250, c="red",
                   edgecolors="k", label=f"best ({best['score']:.3f})")
    for axis, name in (("x", x), ("y", y)):
        if result.space.params[name].kind == "log":
            (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    fig.colorbar(points, ax=ax, label="score (validation accuracy)")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3, fontsize=7)
    ax.set_title(f"score over ({x}, {y}), {len(done)} trials")
    return save_figure(fig, path)
