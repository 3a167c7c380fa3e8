"""Chapter 6: overfitting a 7-layer ReLU net (784-100×6-10) on 300 MNIST images (SGD lr 0.01,
batch 100 with replacement), and what weight decay (λ = 0.1), dropout (ratio 0.2) and both
do to the train/test gap. All four variants are drawn side by side in one figure;
``--set variants=dropout`` runs a subset (each variant has its own random stream, so its
numbers do not depend on which others run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.models import MultiLayerNetExtend
from groundup.train import Trainer

NAME = "overfit"
DESCRIPTION = "ch6: 300 images, 784-100x6-10: none / weight decay 0.1 / dropout 0.2 / both"
VARIANTS = ("none", "weight-decay", "dropout", "both")


@dataclass(frozen=True)
class Config:
    """Book: x_train[:300], hidden [100]*6, He init, SGD lr 0.01, batch 100; 201 epochs
    without dropout (overfit_weight_decay.py) and 301 with it (overfit_dropout.py);
    weight_decay_lambda 0.1; dropout_ratio 0.2. ``convention``: 'groundup' (inverted
    dropout) or 'book' (the book's dropout, scaled by 1 - ratio at test time).
    ``test_size``: the first test images every epoch is evaluated on (0: all of them)."""

    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 300
    test_size: int = 0
    hidden: tuple[int, ...] = (100, 100, 100, 100, 100, 100)
    lr: float = 0.01
    batch_size: int = 100
    epochs: int = 201
    dropout_epochs: int = 301
    weight_decay: float = 0.1
    dropout_ratio: float = 0.2
    variants: tuple[str, ...] = VARIANTS
    convention: str = "groundup"

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        c.check_int(owner, "train_size", self.train_size)
        c.check_int(owner, "test_size", self.test_size, low=0)
        c.check_int(owner, "dropout_epochs", self.dropout_epochs)
        c.check_number(owner, "weight_decay", self.weight_decay, low=0)
        c.check_number(owner, "dropout_ratio", self.dropout_ratio, low=0, high=1,
                       low_open=True, high_open=True)
        for variant in self.variants:
            c.check_choice(owner, "variants", variant, VARIANTS)


# the book's data and net for half its epochs (100 and 150): train reaches ≈ 99 %;
# every epoch is tested on the first 1,000 test images
QUICK: dict[str, Any] = {"epochs": 100, "dropout_epochs": 150, "test_size": 1000}
BOOK = ("without regularization train 100 %, test clearly lower; weight decay 0.1 and dropout "
        "narrow the gap, train below 100 %")


def run(config: Config) -> dict[str, Any]:
    (x_train, t_train), (x_test, t_test), data = c.load(config.dataset)
    x, t = c.head(x_train, t_train, config.train_size)
    x_test, t_test = c.head(x_test, t_test, config.test_size)
    classes = int(t_train.max()) + 1
    streams = c.child_rngs(config.seed, len(VARIANTS))
    out = {}
    for variant in config.variants:
        rng = streams[VARIANTS.index(variant)]
        decay = config.weight_decay if variant in ("weight-decay", "both") else 0.0
        dropout = variant in ("dropout", "both")
        model = MultiLayerNetExtend(x.shape[1], list(config.hidden), classes,
                                    weight_init_std="relu", weight_decay_lambda=decay,
                                    use_dropout=dropout, dropout_ration=config.dropout_ratio,
                                    rng=rng, convention=config.convention)
        trainer = Trainer(model, optimizers.get("sgd", lr=config.lr), rng=rng,
                          callbacks=[c.epoch_progress(f"{variant}: ")])
        history = trainer.fit(x, t, epochs=config.dropout_epochs if dropout else config.epochs,
                              batch_size=config.batch_size, test=(x_test, t_test),
                              sampling="replacement").to_dict()
        train_acc, test_acc = history["train_accuracy"], history["test_accuracy"]
        out[variant] = {"weight_decay": decay,
                        "dropout_ratio": config.dropout_ratio if dropout else 0.0,
                        "train_accuracy": train_acc, "test_accuracy": test_acc,
                        "loss": history["loss"], "final_train_accuracy": train_acc[-1],
                        "final_test_accuracy": test_acc[-1], "gap": train_acc[-1] - test_acc[-1],
                        "gap_last10": c.tail_mean(train_acc) - c.tail_mean(test_acc)}
    return {"data": c.used(data, len(x), len(x_test)),
            "net": c.net_name(x.shape[1], config.hidden, classes),
            "common_epochs": min(config.epochs, config.dropout_epochs), "variants": out}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for variant, row in results["variants"].items():
        out[f"{variant}: final train acc"] = row["final_train_accuracy"]
        out[f"{variant}: final test acc"] = row["final_test_accuracy"]
        out[f"{variant}: gap (train - test)"] = row["gap"]
        out[f"{variant}: gap, mean of last 10 epochs"] = row["gap_last10"]
    common = results["common_epochs"]
    for variant, row in results["variants"].items():
        # every variant has trained this long: the like-for-like comparison
        out[f"{variant}: gap at epoch {common}"] = (row["train_accuracy"][common - 1]
                                                    - row["test_accuracy"][common - 1])
    return out


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {variant: {"xlabel": "epochs", "ylabel": "accuracy", "ylim": [0, 1],
                      "series": {"train": row["train_accuracy"], "test": row["test_accuracy"]}}
            for variant, row in results["variants"].items()}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    rows = results["variants"]
    cols = min(2, len(rows))
    nrows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4 * nrows), squeeze=False)
    for ax, (variant, row) in zip(axes.flat, rows.items(), strict=False):
        epochs = range(len(row["train_accuracy"]))
        every = max(len(epochs) // 20, 1)
        ax.plot(epochs, row["train_accuracy"], marker="o", markevery=every, markersize=4,
                label="train")
        ax.plot(epochs, row["test_accuracy"], marker="s", markevery=every, markersize=4,
                label="test")
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("epochs")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
        title = {"none": "no regularization",
                 "weight-decay": f"weight decay λ={row['weight_decay']:g}",
                 "dropout": f"dropout {row['dropout_ratio']:g}",
                 "both": f"λ={row['weight_decay']:g} + dropout {row['dropout_ratio']:g}"}[variant]
        ax.set_title(f"{title}: train {row['final_train_accuracy']:.3f}, test "
                     f"{row['final_test_accuracy']:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    net = f"{results['net']} " if "net" in results else ""
    fig.suptitle(f"overfitting {net}on {c.data_title(results['data'])}, SGD", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "overfit.png")]
