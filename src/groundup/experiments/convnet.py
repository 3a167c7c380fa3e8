"""Chapter 7: SimpleConvNet (conv 30×5×5 → ReLU → 2×2 max pool → 100 → 10) trained with
Adam (lr 0.001, batch 100 with replacement, 20 epochs, per-epoch accuracy on 1,000
samples); accuracy curves and the first-layer filters before and after training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.models import SimpleConvNet
from groundup.rng import make_rng
from groundup.train import Trainer

NAME = "convnet"
DESCRIPTION = "ch7: SimpleConvNet, Adam lr 0.001, 20 epochs; accuracy and filters"


@dataclass(frozen=True)
class Config:
    """Book: filter_num 30, filter_size 5, pad 0, stride 1, hidden 100, weight_init_std
    0.01, Adam lr 0.001, 20 epochs, batch 100, evaluate_sample_num_per_epoch 1000.
    ``train_size``/``test_size``: the first images of each set (0: all of them)."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 0
    test_size: int = 0
    filter_num: int = 30
    filter_size: int = 5
    pad: int = 0
    stride: int = 1
    hidden_size: int = 100
    weight_init_std: float = 0.01
    optimizer: str = "adam"
    lr: float = 0.001
    epochs: int = 20
    batch_size: int = 100
    eval_sample_num: int = 1000

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size, low=0)
        c.check_int(owner, "test_size", self.test_size, low=0)
        for name in ("filter_num", "filter_size", "stride", "hidden_size", "epochs",
                     "batch_size", "eval_sample_num"):
            c.check_int(owner, name, getattr(self, name))
        c.check_int(owner, "pad", self.pad, low=0)
        c.check_positive(owner, "weight_init_std", self.weight_init_std)
        c.check_choice(owner, "optimizer", self.optimizer, optimizers.names())


# the book's net, 4 epochs on 2,000 images (≈ 0.85 test accuracy), tested on the first 1,000
QUICK: dict[str, Any] = {"train_size": 2000, "test_size": 1000, "epochs": 4,
                         "eval_sample_num": 500}
BOOK = "about 98.9 % test accuracy after 20 epochs on the 60,000 training images"


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    (x_train, t_train), (x_test, t_test), data = c.load(config.dataset, flatten=False)
    x_train, t_train = c.head(x_train, t_train, config.train_size)
    x_test, t_test = c.head(x_test, t_test, config.test_size)
    data = c.used(data, len(x_train), len(x_test))
    conv = {"filter_num": config.filter_num, "filter_size": config.filter_size,
            "pad": config.pad, "stride": config.stride}
    model = SimpleConvNet(x_train.shape[1:], conv, config.hidden_size, int(t_train.max()) + 1,
                          config.weight_init_std, rng=rng)
    before = model.params["W1"].copy()
    trainer = Trainer(model, optimizers.get(config.optimizer, lr=config.lr), rng=rng,
                      callbacks=[c.epoch_progress("")])
    history = trainer.fit(x_train, t_train, epochs=config.epochs, batch_size=config.batch_size,
                          test=(x_test, t_test), sampling="replacement",
                          eval_sample_num=config.eval_sample_num).to_dict()
    return {"data": data, "history": history,
            "final_test_accuracy": trainer.evaluate(x_test, t_test)["accuracy"],
            "final_train_accuracy": trainer.evaluate(x_train, t_train)["accuracy"],
            "filters_before": np.round(before[:, 0], 5),
            "filters_after": np.round(model.params["W1"][:, 0], 5)}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    return {"final train accuracy (all)": results["final_train_accuracy"],
            "final test accuracy (all)": results["final_test_accuracy"],
            "last-epoch train accuracy (sample)": results["history"]["train_accuracy"][-1],
            "last-epoch test accuracy (sample)": results["history"]["test_accuracy"][-1]}


def curves(results: dict[str, Any]) -> dict[str, Any]:
    h = results["history"]
    return {"accuracy": {"xlabel": "epochs", "ylabel": "accuracy", "ylim": [0, 1],
                         "series": {"train": h["train_accuracy"], "test": h["test_accuracy"]}},
            "loss": {"xlabel": "epochs", "ylabel": "mean batch loss",
                     "series": {"train": h["loss"]}}}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    h = results["history"]
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    epochs = np.arange(len(h["train_accuracy"]))
    ax.plot(epochs, h["train_accuracy"], marker="o", markevery=2, label="train")
    ax.plot(epochs, h["test_accuracy"], marker="s", markevery=2, label="test")
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.legend(loc="lower right")
    ax.set_title(f"SimpleConvNet on {c.data_title(results['data'])}: test accuracy "
                 f"{results['final_test_accuracy']:.4f}", fontsize=9)
    paths = [save_figure(fig, out_dir / "convnet.png")]

    filters = [np.asarray(results["filters_before"]), np.asarray(results["filters_after"])]
    count = len(filters[0])
    cols = min(count, 15)
    rows = int(np.ceil(count / cols))
    fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 0.75, 2 * rows * 0.95),
                             squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.08, hspace=0.4)
    for block, (name, w) in enumerate(zip(("before", "after"), filters, strict=True)):
        for i in range(rows * cols):
            ax = axes[block * rows + i // cols, i % cols]
            ax.axis("off")
            if i < count:
                ax.imshow(w[i], cmap="gray_r", interpolation="nearest")
        axes[block * rows, 0].set_title(f"conv1 filters {name} training", fontsize=9,
                                        loc="left")
    paths.append(save_figure(fig, out_dir / "filters.png"))
    return paths
