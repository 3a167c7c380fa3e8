"""Chapter 6: std 0.01 vs Xavier vs He initial weights for the same 5-layer ReLU net on MNIST
(MultiLayerNet 784-100×4-10, SGD lr 0.01, batch 128 with replacement, 2,000 iterations)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundup import initializers, optimizers
from groundup.experiments import _common as c
from groundup.experiments import _diagnostics
from groundup.models import MultiLayerNet
from groundup.rng import make_rng

NAME = "weight-init-compare"
DESCRIPTION = "ch6: std=0.01 vs Xavier vs He init, 784-100x4-10 ReLU, SGD, 2,000 iters"
LABELS = {"xavier": "Xavier", "he": "He"}


@dataclass(frozen=True)
class Config:
    """Book: inits std=0.01, 'sigmoid' (Xavier, the book's N(0, 1/n)) and 'relu' (He,
    N(0, 2/n)); ReLU everywhere; SGD lr 0.01; batch 128; 2,000 iterations.

    ``inits`` entries: a float std or an initializer name (book names keep their meaning).
    ``diagnostics``: record each net's per-layer diagnostics (``diagnostics/``) before
    training and every ``diagnostics_every`` iterations; they change no result.
    """

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 0
    test_size: int = 0
    hidden: tuple[int, ...] = (100, 100, 100, 100)
    activation: str = "relu"
    inits: tuple[str, ...] = ("0.01", "xavier", "he")
    lr: float = 0.01
    batch_size: int = 128
    iters: int = 2000
    diagnostics: bool = True
    diagnostics_every: int = 200

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size, low=0)
        c.check_int(owner, "test_size", self.test_size, low=0)
        c.check_choice(owner, "activation", self.activation, ("relu", "sigmoid", "tanh"))
        for init in self.inits:
            parse_init(init)
        c.check_int(owner, "iters", self.iters)
        c.check_int(owner, "diagnostics_every", self.diagnostics_every)


# the book's net for 500 of its 2,000 iterations: std 0.01 flat at ln 10, He ahead of Xavier
QUICK: dict[str, Any] = {"iters": 500, "test_size": 1000, "diagnostics_every": 100}
BOOK = ("loss figure: std 0.01 does not learn; Xavier and He do, He fastest (no number "
        "printed); activations (6.2.2): std 0.01's vanish with depth, He's stay spread")


def parse_init(text: str) -> str | float:
    """'0.01' → 0.01; a name is checked against the initializers (book aliases included)."""
    try:
        value = float(text)
    except ValueError:
        initializers.resolve(text)
        return text
    c.check_positive(NAME, "inits", value)
    return value


def label(text: str) -> str:
    value = parse_init(text)
    return f"std={value:g}" if isinstance(value, float) else LABELS.get(text, text)


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), (x_test, t_test), data = c.load(config.dataset)
    x_train, t_train = c.head(x_train, t_train, config.train_size)
    x_test, t_test = c.head(x_test, t_test, config.test_size)
    data = c.used(data, len(x_train), len(x_test))
    classes = int(t_train.max()) + 1
    nets = {}
    for init in config.inits:
        model = MultiLayerNet(x_train.shape[1], list(config.hidden), classes,
                              activation=config.activation, weight_init_std=parse_init(init),
                              rng=rng)
        nets[label(init)] = (model, optimizers.get("sgd", lr=config.lr))
    watch = _diagnostics.watch(list(nets), x_train, t_train, enabled=config.diagnostics,
                               seed=config.seed, every=config.diagnostics_every,
                               batch_size=config.batch_size)
    losses = c.compare_loop(nets, x_train, t_train, iters=config.iters,
                            batch_size=config.batch_size, rng=rng, label="", watch=watch)
    if watch is not None:
        watch.finish()
    out = {key: {"loss": losses[key], "test_accuracy": model.accuracy(x_test, t_test),
                 "train_accuracy": model.accuracy(x_train, t_train)}
           for key, (model, _) in nets.items()}
    return {"data": data, "inits": out}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    return c.loss_and_accuracy(results["inits"])


def curves(results: dict[str, Any]) -> dict[str, Any]:
    series = c.smoothed_losses(results["inits"])
    return {"smoothed training loss": {"xlabel": "iterations", "ylabel": "loss",
                                       "ylim": [0, c.loss_top(series)], "series": series}}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    rows = results["inits"]
    markers = ["o", "s", "D", "x", "^"]
    labels = {key: f"{key} (test acc {row['test_accuracy']:.3f})" for key, row in rows.items()}
    series = c.smoothed_losses(rows)
    steps = len(next(iter(rows.values()))["loss"])
    return [c.loss_figure(series, labels, [markers[i % len(markers)] for i in range(len(rows))],
                          c.loss_top(series),
                          f"weight initialization, {steps:,} iterations on "
                          f"{c.data_title(results['data'])}",
                          out_dir / "weight_init_compare.png")]
