"""Chapter 4: TwoLayerNet(784, 50, 10) with sigmoid, trained by mini-batch SGD (lr 0.1,
batch 100 drawn with replacement, 10,000 iterations); loss per iteration and train/test
accuracy per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.models import TwoLayerNet
from groundup.rng import make_rng

NAME = "two-layer-net"
DESCRIPTION = "ch4: TwoLayerNet 784-50-10, SGD lr 0.1, 10,000 iterations, loss and accuracy"


@dataclass(frozen=True)
class Config:
    """Book: hidden 50, sigmoid, weight_init_std 0.01, lr 0.1, batch 100, 10,000 iters.
    ``train_size``/``test_size``: the first images of each set (0: all of them)."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 0
    test_size: int = 0
    hidden_size: int = 50
    activation: str = "sigmoid"
    weight_init_std: float = 0.01
    lr: float = 0.1
    batch_size: int = 100
    iters_num: int = 10000

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size, low=0)
        c.check_int(owner, "test_size", self.test_size, low=0)
        c.check_int(owner, "hidden_size", self.hidden_size)
        c.check_choice(owner, "activation", self.activation, ("sigmoid", "relu", "tanh"))
        c.check_positive(owner, "weight_init_std", self.weight_init_std)
        c.check_int(owner, "iters_num", self.iters_num)


# 30 passes over the 5,000 images: the sigmoid net is past its plateau (≈ 0.9 accuracy);
# test on the first 1,000 test images
QUICK: dict[str, Any] = {"iters_num": 1500, "test_size": 1000}
BOOK = "94.4 % test accuracy after 10,000 iterations on the 60,000 training images"


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), (x_test, t_test), data = c.load(config.dataset)
    x_train, t_train = c.head(x_train, t_train, config.train_size)
    x_test, t_test = c.head(x_test, t_test, config.test_size)
    data = c.used(data, len(x_train), len(x_test))
    classes = int(t_train.max()) + 1
    model = TwoLayerNet(x_train.shape[1], config.hidden_size, classes, config.weight_init_std,
                        activation=config.activation, rng=rng)
    optimizer = optimizers.get("sgd", lr=config.lr)
    iter_per_epoch = max(len(x_train) // config.batch_size, 1)
    losses, train_acc, test_acc, steps = [], [], [], []
    for step in range(config.iters_num):
        mask = rng.choice(len(x_train), config.batch_size)
        grads = model.gradient(x_train[mask], t_train[mask])
        optimizer.update(model.params, grads)
        losses.append(float(model.last_loss))
        if (step + 1) % iter_per_epoch == 0:
            steps.append(step + 1)
            train_acc.append(model.accuracy(x_train, t_train))
            test_acc.append(model.accuracy(x_test, t_test))
            c.progress(f"iteration {step + 1}/{config.iters_num}, train acc {train_acc[-1]:.3f}, "
                       f"test acc {test_acc[-1]:.3f}", every=1.0)
    return {"data": data, "net": c.net_name(x_train.shape[1], [config.hidden_size], classes),
            "activation": config.activation, "iter_per_epoch": iter_per_epoch, "loss": losses,
            "epoch_steps": steps, "train_accuracy": train_acc, "test_accuracy": test_acc,
            "final_train_accuracy": model.accuracy(x_train, t_train),
            "final_test_accuracy": model.accuracy(x_test, t_test)}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    return {"final train accuracy": results["final_train_accuracy"],
            "final test accuracy": results["final_test_accuracy"],
            "mean loss of last 100 iterations": float(np.mean(results["loss"][-100:]))}


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "loss per iteration (smoothed)": {
            "xlabel": "iteration", "ylabel": "loss",
            "series": {"train batch loss": c.smooth(results["loss"])}},
        "accuracy per epoch": {"xlabel": "epoch", "ylabel": "accuracy", "ylim": [0, 1],
                               "series": {"train": results["train_accuracy"],
                                          "test": results["test_accuracy"]}},
    }


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax1.plot(np.arange(1, len(results["loss"]) + 1), results["loss"], linewidth=0.5)
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("loss")
    epochs = np.arange(1, len(results["train_accuracy"]) + 1)
    ax2.plot(epochs, results["train_accuracy"], label="train acc")
    ax2.plot(epochs, results["test_accuracy"], "--", label="test acc")
    ax2.set_xlabel("epochs")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1.0)
    ax2.legend(loc="lower right")
    net = f" {results['net']} ({results['activation']})" if "net" in results else ""
    fig.suptitle(f"TwoLayerNet{net} on {c.data_title(results['data'])}: test accuracy "
                 f"{results['final_test_accuracy']:.4f} after {len(results['loss']):,} iterations",
                 fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "two_layer_net.png")]
