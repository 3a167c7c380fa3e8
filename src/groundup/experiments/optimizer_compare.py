"""Chapter 6: SGD, Momentum, AdaGrad and Adam training the same 5-layer ReLU net on MNIST
(MultiLayerNet 784-100×4-10, He init, batch 128 drawn with replacement, 2,000 iterations,
each step on the same batch for every optimizer); smoothed loss curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.models import MultiLayerNet
from groundup.rng import make_rng

NAME = "optimizer-compare"
DESCRIPTION = "ch6: SGD/Momentum/AdaGrad/Adam losses on MNIST (784-100x4-10, 2,000 iters)"


@dataclass(frozen=True)
class Config:
    """Book: hidden [100]*4, ReLU, He init, batch 128, 2,000 iterations, SGD/Momentum/AdaGrad
    lr 0.01 and Adam lr 0.001 (groundup's optimizers, torch formulas)."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 0
    test_size: int = 0
    hidden: tuple[int, ...] = (100, 100, 100, 100)
    batch_size: int = 128
    iters: int = 2000
    optimizers: tuple[str, ...] = ("sgd", "momentum", "adagrad", "adam")
    lrs: tuple[float, ...] = (0.01, 0.01, 0.01, 0.001)

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size, low=0)
        c.check_int(owner, "test_size", self.test_size, low=0)
        c.check_int(owner, "iters", self.iters)
        if len(self.lrs) != len(self.optimizers):
            raise c.value_error(owner, "len(lrs)", f"len(optimizers) = {len(self.optimizers)}",
                                len(self.lrs))
        for name in self.optimizers:
            c.check_choice(owner, "optimizers", name, optimizers.names())
        for lr in self.lrs:
            c.check_positive(owner, "lrs", lr)


# the book's net for 500 of its 2,000 iterations: SGD is already far behind the other three
QUICK: dict[str, Any] = {"iters": 500, "test_size": 1000}
BOOK = ("loss figure: SGD clearly slowest; Momentum, AdaGrad and Adam fast, AdaGrad a bit ahead "
        "(no number printed)")


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), (x_test, t_test), data = c.load(config.dataset)
    x_train, t_train = c.head(x_train, t_train, config.train_size)
    x_test, t_test = c.head(x_test, t_test, config.test_size)
    data = c.used(data, len(x_train), len(x_test))
    classes = int(t_train.max()) + 1
    nets = {}
    for name, lr in zip(config.optimizers, config.lrs, strict=True):
        model = MultiLayerNet(x_train.shape[1], list(config.hidden), classes, rng=rng)
        nets[name] = (model, optimizers.get(name, lr=lr))
    losses = c.compare_loop(nets, x_train, t_train, iters=config.iters,
                            batch_size=config.batch_size, rng=rng, label="")
    out = {}
    for name, (model, optimizer) in nets.items():
        out[name] = {"lr": optimizer.lr, "loss": losses[name],
                     "test_accuracy": model.accuracy(x_test, t_test),
                     "train_accuracy": model.accuracy(x_train, t_train)}
    return {"data": data, "optimizers": out}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    return c.loss_and_accuracy(results["optimizers"])


def curves(results: dict[str, Any]) -> dict[str, Any]:
    series = c.smoothed_losses(results["optimizers"])
    return {"smoothed training loss": {"xlabel": "iterations", "ylabel": "loss",
                                       "ylim": [0, c.loss_top(series)], "series": series}}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    rows = results["optimizers"]
    markers = {"sgd": "o", "momentum": "x", "adagrad": "s", "adam": "D"}
    labels = {name: f"{name} (lr {row['lr']:g}; test acc {row['test_accuracy']:.3f})"
              for name, row in rows.items()}
    series = c.smoothed_losses(rows)
    steps = len(next(iter(rows.values()))["loss"])
    return [c.loss_figure(series, labels, [markers.get(name, ".") for name in rows],
                          c.loss_top(series),
                          f"optimizers, {steps:,} iterations on {c.data_title(results['data'])}",
                          out_dir / "optimizer_compare.png")]
