"""Chapter 6: the book's random search for the learning rate and weight decay: 500 MNIST
images, 20 % held out for validation, 100 trials of 50 epochs of a 7-layer ReLU net
(784-100×6-10, SGD, batch 100), lr ~ 10^U(-6, -2), weight decay ~ 10^U(-8, -4); scored
by last-epoch validation accuracy. Runs ``groundup.search.random_search``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup.experiments import _common as c

NAME = "hyperparameter-search"
DESCRIPTION = "ch6: random search of lr and weight decay, 100 trials x 50 epochs, Best-20 grid"


@dataclass(frozen=True)
class Config:
    """Book: x_train[:500], validation_rate 0.2 (shuffled), 100 trials, 50 epochs,
    hidden [100]*6, SGD, batch 100, lr 10^U(-6, -2), weight_decay 10^U(-8, -4)."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 500
    val_rate: float = 0.2
    trials: int = 100
    epochs: int = 50
    hidden: tuple[int, ...] = (100, 100, 100, 100, 100, 100)
    optimizer: str = "sgd"
    batch_size: int = 100
    lr_range: tuple[float, ...] = (1e-6, 1e-2)
    weight_decay_range: tuple[float, ...] = (1e-8, 1e-4)
    best_n: int = 20
    top_k: int = 10
    workers: int = 1

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        for name in ("train_size", "trials", "epochs", "batch_size", "best_n", "top_k",
                     "workers"):
            c.check_int(owner, name, getattr(self, name))
        c.check_number(owner, "val_rate", self.val_rate, low=0, high=1, low_open=True,
                       high_open=True)
        for name in ("lr_range", "weight_decay_range"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not 0 < low_high[0] < low_high[1]:
                raise c.value_error(owner, name, "two numbers 0 < low < high", low_high)


# the book's data and net, 20 trials of 30 epochs: the best ones have lr in [1e-3, 1e-2]
QUICK: dict[str, Any] = {"trials": 20, "epochs": 30, "best_n": 10, "top_k": 5}
BOOK = "best lr 1e-3 to 1e-2, weight decay 1e-8 to 1e-6, best validation accuracy about 0.82"


def space_specs(config: Config) -> list[str]:
    return [f"lr=log:{config.lr_range[0]:g}:{config.lr_range[1]:g}",
            f"weight_decay=log:{config.weight_decay_range[0]:g}:"
            f"{config.weight_decay_range[1]:g}"]


def run(config: Config) -> dict[str, Any]:
    from groundup.data import train_val_split
    from groundup.search import SearchSpace, random_search

    (x_train, t_train), _, data = c.load(config.dataset)
    x, t = c.head(x_train, t_train, config.train_size)
    (x_fit, t_fit), (x_val, t_val) = train_val_split(x, t, config.val_rate, stratify=False,
                                                     seed=config.seed)
    space = SearchSpace.parse(space_specs(config))

    def report(result: Any) -> None:
        done = [t for t in result.trials if t["state"] == "COMPLETE"]
        best = max((t["score"] for t in done), default=float("nan"))
        c.progress(f"trial {len(done)}/{config.trials} done, best val acc so far {best:.3f}",
                   every=0.0 if len(done) == config.trials else 1.0)

    result = random_search(space, x_fit, t_fit, x_val, t_val, trials=config.trials,
                           epochs=config.epochs, seed=config.seed, hidden=config.hidden,
                           optimizer=config.optimizer, batch_size=config.batch_size,
                           workers=config.workers, on_trial=report)
    search = result.to_dict()
    for trial in search["trials"]:
        trial.pop("duration_s", None)  # wall time: kept out so equal seeds give equal files
    if search.get("best"):
        search["best"].pop("duration_s", None)
    return {"data": c.used(data, len(x)), "n_fit": len(x_fit), "n_val": len(x_val),
            "space": space_specs(config), "best_n": config.best_n, "top_k": config.top_k,
            "search": search}


def _ranked(results: dict[str, Any]) -> list[dict[str, Any]]:
    done = [t for t in results["search"]["trials"] if t["state"] == "COMPLETE"]
    return sorted(done, key=lambda t: (-t["score"], t["number"]))


def metrics(results: dict[str, Any]) -> dict[str, float]:
    ranked = _ranked(results)
    top = ranked[:results["top_k"]]
    lrs = np.log10([t["params"]["lr"] for t in top])
    decays = np.log10([t["params"]["weight_decay"] for t in top])
    best = ranked[0]
    k = len(top)
    return {"best val accuracy": best["score"], "best lr": best["params"]["lr"],
            "best weight decay": best["params"]["weight_decay"],
            f"top-{k} val accuracy, mean": float(np.mean([t["score"] for t in top])),
            f"top-{k} lr, min": float(10 ** lrs.min()), f"top-{k} lr, max": float(10 ** lrs.max()),
            f"top-{k} share with 1e-3 <= lr <= 1e-2": float(np.mean((lrs >= -3) & (lrs <= -2))),
            f"top-{k} weight decay, geometric mean": float(10 ** decays.mean())}


def curves(results: dict[str, Any]) -> dict[str, Any]:
    ranked = _ranked(results)
    best = ranked[0]["history"]
    return {"validation accuracy by rank": {
                "xlabel": "rank", "ylabel": "last-epoch val accuracy", "ylim": [0, 1],
                "x": list(range(1, len(ranked) + 1)),
                "series": {"score": [t["score"] for t in ranked]}},
            "best trial": {"xlabel": "epochs", "ylabel": "accuracy", "ylim": [0, 1],
                           "series": {"val": best["val_accuracy"],
                                      "train": best["train_accuracy"]}}}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.search import SearchResult, plot_best_n, plot_score_plane

    result = SearchResult.from_dict(results["search"])
    return [plot_best_n(result, out_dir / "best_n.png", n=results["best_n"]),
            plot_score_plane(result, out_dir / "score_plane.png", "lr", "weight_decay")]
