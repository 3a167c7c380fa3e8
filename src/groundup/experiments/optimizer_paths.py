"""Chapter 6: the paths of SGD, Momentum, AdaGrad and Adam on f(x, y) = x²/20 + y² from
(-7, 2), 30 updates each, with the book's learning rates and update formulas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup.experiments import _common as c

NAME = "optimizer-paths"
DESCRIPTION = "ch6: SGD/Momentum/AdaGrad/Adam paths on f = x²/20 + y²"
FORMULAS = ("book", "torch")


@dataclass(frozen=True)
class Config:
    """Book: start (-7, 2), 30 updates, SGD lr 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3.

    ``formulas='book'`` uses ``groundup.book.optimizers`` (the book's update rules, so the
    figure is the book's); ``'torch'`` uses ``groundup.optimizers`` (torch's rules).
    """

    seed: int = 0
    init: tuple[float, ...] = (-7.0, 2.0)
    iters: int = 30
    optimizers: tuple[str, ...] = ("sgd", "momentum", "adagrad", "adam")
    lrs: tuple[float, ...] = (0.95, 0.1, 1.5, 0.3)
    formulas: str = "book"

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        if len(self.init) != 2:
            raise c.value_error(owner, "init", "two numbers (x, y)", self.init)
        c.check_int(owner, "iters", self.iters)
        c.check_choice(owner, "formulas", self.formulas, FORMULAS)
        if len(self.lrs) != len(self.optimizers):
            raise c.value_error(owner, "len(lrs)", f"len(optimizers) = {len(self.optimizers)}",
                                len(self.lrs))
        for lr in self.lrs:
            c.check_positive(owner, "lrs", lr)
        _registry(self.formulas)  # import check
        for name in self.optimizers:
            c.check_choice(owner, "optimizers", name, _names(self.formulas))


QUICK: dict[str, Any] = {}
BOOK = ("SGD zig-zags, Momentum rolls, AdaGrad goes straight, Adam in between (figures 6-3 to "
        "6-8)")


def _registry(formulas: str) -> Any:
    if formulas == "book":
        from groundup.book import optimizers as module
    else:
        from groundup import optimizers as module
    return module


def _names(formulas: str) -> list[str]:
    return _registry(formulas).names()


def f(x: Any, y: Any) -> Any:
    """x²/20 + y²."""
    return x ** 2 / 20.0 + y ** 2


def run(config: Config) -> dict[str, Any]:
    module = _registry(config.formulas)
    out = {}
    for name, lr in zip(config.optimizers, config.lrs, strict=True):
        optimizer = module.get(name, lr=lr)
        params = {"x": np.array([config.init[0]]), "y": np.array([config.init[1]])}
        path = []
        for _ in range(config.iters):
            path.append((float(params["x"][0]), float(params["y"][0])))
            grads = {"x": params["x"] / 10.0, "y": 2.0 * params["y"]}
            optimizer.update(params, grads)
        final = (float(params["x"][0]), float(params["y"][0]))
        out[name] = {"lr": lr, "path": path, "final": final, "final_f": f(*final)}
    return {"formulas": config.formulas, "paths": out}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    return {f"{name} final f": run_["final_f"] for name, run_ in results["paths"].items()}


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    runs = results["paths"]
    cols = 2 if len(runs) > 1 else 1
    rows = int(np.ceil(len(runs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    gx, gy = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    z = f(gx, gy)
    z[z > 7] = 0  # the book's contour trick: only the inner levels are drawn
    for ax, (name, run_) in zip(axes.flat, runs.items(), strict=False):
        path = np.array(run_["path"])
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3, linewidth=1)
        ax.contour(gx, gy, z)
        ax.plot(0, 0, "+", color="black", markersize=12)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"{name} (lr={run_['lr']:g}): end f = {run_['final_f']:.2g}", fontsize=10)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.suptitle(f"f(x, y) = x²/20 + y², {results['formulas']} update formulas")
    fig.tight_layout()
    return [save_figure(fig, out_dir / "optimizer_paths.png")]
