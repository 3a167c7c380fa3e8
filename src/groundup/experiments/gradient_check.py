"""Chapter 5: backprop vs numerical gradient of TwoLayerNet(784, 50, 10) (ReLU) on three
training images, per parameter: the book's mean absolute difference, and the maximum
relative error |a − n| / max(|a| + |n|, 1e-8) of ``groundup.numerical.gradient_check``.

Both measures cover every coordinate of every parameter by default (39,760 at the book's
size: W1 39,200, b1 50, W2 500, b2 10); ``every_coordinate=False`` checks ``coords``
random coordinates per array instead. ``results.json`` records how many were checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup.experiments import _common as c
from groundup.models import TwoLayerNet
from groundup.numerical import gradient_check, relative_error
from groundup.rng import make_rng

NAME = "gradient-check"
DESCRIPTION = "ch5: backprop vs numerical gradient per parameter (TwoLayerNet, 3 images)"


@dataclass(frozen=True)
class Config:
    """Book: TwoLayerNet(784, 50, 10), ReLU, weight_init_std 0.01, x_train[:3]; float64.
    ``gradient_check`` visits every coordinate, or ``coords`` random ones per array when
    ``every_coordinate`` is false."""

    seed: int = 0
    dataset: str = "mnist"
    hidden_size: int = 50
    weight_init_std: float = 0.01
    batch_size: int = 3
    every_coordinate: bool = True
    coords: int = 200

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "hidden_size", self.hidden_size)
        c.check_positive(owner, "weight_init_std", self.weight_init_std)
        c.check_int(owner, "coords", self.coords)


QUICK: dict[str, Any] = {"hidden_size": 8, "every_coordinate": False, "coords": 20}
BOOK = "mean |backprop - numerical| about 1e-13 (W1, W2), 1e-12 (b1), 1e-10 (b2)"


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), _, data = c.load(config.dataset)
    x = x_train[:config.batch_size].astype(np.float64)
    t = t_train[:config.batch_size]
    model = TwoLayerNet(x.shape[1], config.hidden_size, int(t_train.max()) + 1,
                        config.weight_init_std, activation="relu", rng=rng, dtype=np.float64)
    numerical = model.numerical_gradient(x, t)
    backprop = model.gradient(x, t)
    per_param = {}
    for name in model.params:
        diff = np.abs(backprop[name] - numerical[name])
        per_param[name] = {"shape": list(model.params[name].shape),
                           "mean_abs_diff": float(diff.mean()),
                           "max_abs_diff": float(diff.max()),
                           "max_relative_error": float(relative_error(backprop[name],
                                                                      numerical[name]).max()),
                           "mean_abs_gradient": float(np.abs(backprop[name]).mean())}
    coords = None if config.every_coordinate else config.coords
    checked = gradient_check(model, x, t, coords=coords, seed=config.seed)
    for name, error in checked.items():
        size = model.params[name].size
        per_param[name]["gradient_check_max_relative_error"] = float(error)
        per_param[name]["gradient_check_coordinates"] = size if coords is None \
            else min(size, coords)
    return {"data": c.used(data, len(x)), "hidden_size": config.hidden_size,
            "params": per_param}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, row in results["params"].items():
        out[f"{name} mean |backprop - numerical|"] = row["mean_abs_diff"]
        out[f"{name} max relative error (gradient_check)"] = \
            row["gradient_check_max_relative_error"]
    return out


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    names = list(results["params"])
    rows = results["params"]
    checked = sum(rows[n].get("gradient_check_coordinates", 0) for n in names)
    total = sum(int(np.prod(rows[n]["shape"])) for n in names)
    scope = f"all {total:,} coordinates" if checked == total else \
        f"{checked:,} of {total:,} coordinates"
    keys = [("mean_abs_diff", f"mean |backprop − numerical| (book, h = 1e-4, all {total:,} "
             "coordinates)"),
            ("gradient_check_max_relative_error", f"max relative error, gradient_check "
             f"({scope})")]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.36
    x = np.arange(len(names))
    for i, (key, label) in enumerate(keys):
        values = [max(rows[n][key], 1e-18) for n in names]
        bars = ax.bar(x + (i - 0.5) * width, values, width, label=label)
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1e}", ha="center",
                    va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, names)
    ax.set_ylabel("difference (log scale)")
    ax.set_ylim(top=1e-2)
    ax.legend(fontsize=7, loc="upper left")
    data = results["data"]
    images = f", {data['n_train_used']} training images" if "n_train_used" in data else ""
    hidden = f"{results['hidden_size']}, " if "hidden_size" in results else ""
    ax.set_title(f"backprop vs numerical gradient, TwoLayerNet (hidden {hidden}ReLU), float64, "
                 f"{data['name']}{images}", fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "gradient_check.png")]
