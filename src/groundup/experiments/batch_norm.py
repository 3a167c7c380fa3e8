"""Chapter 6: the same 6-layer ReLU net (784-100×5-10) with and without batch norm, trained
on 1,000 MNIST images (SGD lr 0.01, batch 100 with replacement, 20 epochs) from 16 initial
weight scales, std = 10^0 … 10^-4; training accuracy per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.experiments import _diagnostics
from groundup.models import MultiLayerNetExtend
from groundup.rng import make_rng

NAME = "batch-norm"
DESCRIPTION = "ch6: with vs without batch norm from 16 init scales (1,000 images, 20 epochs)"


@dataclass(frozen=True)
class Config:
    """Book: x_train[:1000], hidden [100]*5, SGD lr 0.01, batch 100, 20 epochs,
    weight_init_std = logspace(0, -4, 16). ``learn_threshold``: a run "learns" when its
    final training accuracy reaches it. ``convention``: 'groundup' (batch norm with torch's
    eps 1e-5) or 'book' (eps 1e-6, the book's running statistics). ``diagnostics_scales``:
    at this many of the scales, spread over the range (0: none), both nets record their
    per-layer diagnostics (``diagnostics/``) before training and after every epoch; they
    change no result."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 1000
    hidden: tuple[int, ...] = (100, 100, 100, 100, 100)
    lr: float = 0.01
    batch_size: int = 100
    epochs: int = 20
    scale_max_exp: float = 0.0
    scale_min_exp: float = -4.0
    num_scales: int = 16
    learn_threshold: float = 0.5
    convention: str = "groundup"
    diagnostics_scales: int = 4

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size)
        c.check_number(owner, "scale_max_exp", self.scale_max_exp)
        c.check_number(owner, "scale_min_exp", self.scale_min_exp)
        c.check_int(owner, "num_scales", self.num_scales)
        c.check_number(owner, "learn_threshold", self.learn_threshold, low=0, high=1)
        c.check_int(owner, "diagnostics_scales", self.diagnostics_scales, low=0)


# the book's data and net, 8 of its 16 scales for 10 of its 20 epochs
QUICK: dict[str, Any] = {"epochs": 10, "num_scales": 8}
BOOK = ("with batch norm learning at almost every one of the 16 scales, without it only at a "
        "few (figure 6-19, no number printed)")


def diagnosed(num_scales: int, count: int) -> set[int]:
    """The indices of the ``count`` scales, spread over ``num_scales``, that record
    diagnostics (the largest and the smallest among them)."""
    if count <= 0:
        return set()
    return {int(round(i)) for i in np.linspace(0, num_scales - 1, min(count, num_scales))}


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), _, data = c.load(config.dataset)
    x, t = c.head(x_train, t_train, config.train_size)
    classes = int(t_train.max()) + 1
    scales = np.logspace(config.scale_max_exp, config.scale_min_exp, num=config.num_scales)
    steps = max(len(x) // config.batch_size, 1)
    runs = []
    watched = diagnosed(len(scales), config.diagnostics_scales)
    for number, scale in enumerate(scales, 1):
        nets = {}
        for key, use_bn in (("batch norm", True), ("no batch norm", False)):
            model = MultiLayerNetExtend(x.shape[1], list(config.hidden), classes,
                                        weight_init_std=float(scale), use_batchnorm=use_bn,
                                        rng=rng, convention=config.convention)
            nets[key] = (model, optimizers.get("sgd", lr=config.lr))
        accuracy: dict[str, list[float]] = {key: [] for key in nets}
        watch = _diagnostics.watch({key: f"std {scale:.2g}, {key}" for key in nets}, x, t,
                                   enabled=number - 1 in watched, seed=config.seed,
                                   every=steps, batch_size=config.batch_size, unit="epoch")
        for epoch in range(config.epochs):
            c.compare_loop(nets, x, t, iters=steps, batch_size=config.batch_size, rng=rng,
                           watch=watch, first_step=epoch * steps)
            for key, (model, _) in nets.items():
                accuracy[key].append(model.accuracy(x, t))
            c.progress(f"std {scale:.2g} ({number}/{len(scales)}), epoch {epoch + 1}/"
                       f"{config.epochs}: train acc {accuracy['batch norm'][-1]:.3f} with batch "
                       f"norm, {accuracy['no batch norm'][-1]:.3f} without",
                       every=0.0 if epoch + 1 == config.epochs else 1.0)
        if watch is not None:
            watch.finish()
        runs.append({"weight_init_std": float(scale), "train_accuracy": accuracy})
    return {"data": c.used(data, len(x)), "net": c.net_name(x.shape[1], config.hidden, classes),
            "runs": runs,
            "learn_threshold": config.learn_threshold}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    threshold = results["learn_threshold"]
    out: dict[str, float] = {}
    for key in ("batch norm", "no batch norm"):
        finals = [r["train_accuracy"][key][-1] for r in results["runs"]]
        out[f"scales where {key} learns (acc >= {threshold:g})"] = \
            float(sum(a >= threshold for a in finals))
    for r in results["runs"]:
        for key in ("batch norm", "no batch norm"):
            out[f"std={r['weight_init_std']:.2g} {key} final train acc"] = \
                r["train_accuracy"][key][-1]
    return out


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {f"W std {r['weight_init_std']:.2g}": {
        "xlabel": "epochs", "ylabel": "train accuracy", "ylim": [0, 1],
        "series": r["train_accuracy"]} for r in results["runs"]}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    runs = results["runs"]
    cols = min(4, len(runs))
    rows = int(np.ceil(len(runs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for i, (ax, r) in enumerate(zip(axes.flat, runs, strict=False)):
        acc = r["train_accuracy"]
        x = np.arange(1, len(acc["batch norm"]) + 1)
        ax.plot(x, acc["batch norm"], label="Batch Normalization", markevery=2)
        ax.plot(x, acc["no batch norm"], linestyle="--", label="Normal(without BatchNorm)",
                markevery=2)
        ax.set_ylim(0, 1.0)
        ax.set_title(f"W:{r['weight_init_std']:.4g}", fontsize=9)
        ax.tick_params(labelsize=7)
        if i % cols:
            ax.set_yticks([])
        else:
            ax.set_ylabel("accuracy", fontsize=8)
        if i < len(runs) - cols:
            ax.set_xticks([])
        else:
            ax.set_xlabel("epochs", fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    axes.flat[len(runs) - 1].legend(loc="lower right", fontsize=7)
    net = f"{results['net']}, " if "net" in results else ""
    fig.suptitle(f"batch norm (solid) vs none (dashed): train accuracy of {net}SGD, "
                 f"{c.data_title(results['data'])}", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "batch_norm.png")]
