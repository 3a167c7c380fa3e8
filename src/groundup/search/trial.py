"""One trial: build the network a parameter set describes, train it, score it.

The network is the book's chapter 6 MLP (``MultiLayerNetExtend``): ``hidden_layers`` ×
``hidden_size`` ReLU units, He-normal weights, ``weight_decay`` as the book's coupled L2
``0.5·λ·ΣW²`` (AdamW's decoupled decay with ``optimizer='adamw'``), optional dropout
(``dropout_ratio``) and batch norm (``batchnorm``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from groundup import optimizers
from groundup._checks import check_choice
from groundup.callbacks import Callback
from groundup.models import MultiLayerNetExtend
from groundup.search.space import DEFAULTS, OWNER
from groundup.train import Trainer

SCORES = ("last", "best")
STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class SearchData:
    """Training and validation arrays for every trial (the test set is never here)."""

    x_train: np.ndarray
    t_train: np.ndarray
    x_val: np.ndarray
    t_val: np.ndarray

    @property
    def classes(self) -> int:
        t = self.t_train
        return int(t.shape[1]) if t.ndim == 2 else int(max(t.max(), self.t_val.max())) + 1


def trial_seed(seed: int, number: int) -> int:
    """Independent, reproducible seed of trial ``number`` in a search seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def full_params(params: dict[str, Any], defaults: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """``params`` completed with ``defaults`` and then ``DEFAULTS``."""
    return {**DEFAULTS, **(defaults or {}), **params}


def build_model(params: dict[str, Any], input_size: int, classes: int,
                rng: np.random.Generator) -> MultiLayerNetExtend:
    """The trial's network from complete ``params`` (see ``full_params``)."""
    coupled = 0.0 if params["optimizer"] == "adamw" else float(params["weight_decay"])
    ratio = float(params["dropout_ratio"])
    return MultiLayerNetExtend(input_size, [int(params["hidden_size"])] *
                               int(params["hidden_layers"]), classes,
                               weight_init_std="he_normal", weight_decay_lambda=coupled,
                               use_dropout=ratio > 0, dropout_ration=ratio,
                               use_batchnorm=bool(params["batchnorm"]), rng=rng,
                               dtype=np.float32)


def build_optimizer(params: dict[str, Any]) -> optimizers.Optimizer:
    kwargs: dict[str, Any] = {"lr": float(params["lr"])}
    if params["optimizer"] == "adamw":
        kwargs["weight_decay"] = float(params["weight_decay"])
    if "momentum" in params and params["optimizer"] in ("sgd", "momentum", "nesterov"):
        kwargs["momentum"] = float(params["momentum"])
    return optimizers.get(params["optimizer"], **kwargs)


def score_of(history: dict[str, list[float]], score: str = "last") -> float:
    """Last-epoch validation accuracy (the book's) or the best epoch's; 0 with no epoch."""
    check_choice(OWNER, "score", score, SCORES)
    values = [v for v in history.get("val_accuracy", []) if math.isfinite(v)]
    if not values:
        return 0.0
    return float(values[-1] if score == "last" else max(values))


class _Report(Callback):
    """Hands each epoch's logs to ``on_epoch`` and stops training when it returns True."""

    def __init__(self, on_epoch: Callable[[int, dict[str, float]], bool]) -> None:
        self.on_epoch = on_epoch
        self.stopped = False

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.on_epoch(epoch, logs):
            self.stopped = True
            trainer.stop_training = True
            trainer.stop_reason = f"pruned after epoch {epoch + 1}"


def run_trial(params: dict[str, Any], data: SearchData, *, epochs: int, seed: int,
              defaults: dict[str, Any] | None = None,
              on_epoch: Callable[[int, dict[str, float]], bool] | None = None,
              callbacks: Iterable[Callback] = ()) -> dict[str, Any]:
    """Train one network and return its record (without ``number``/``state``/``score``).

    Args:
        params: the sampled hyperparameters; missing ones come from ``defaults``/DEFAULTS.
        data: training and validation arrays.
        epochs: epochs to train (fewer when ``on_epoch`` stops it or the loss diverges).
        seed: seeds the weights and the mini-batch order.
        on_epoch: ``(epoch, logs) -> stop?`` after every epoch (pruning).

    Returns:
        ``{"params", "seed", "history": {"train_accuracy", "val_accuracy", "loss"},
        "epochs_run", "stopped", "diverged", "duration_s"}``.
    """
    started = time.perf_counter()
    full = full_params(params, defaults)
    rng = np.random.default_rng(seed)
    model = build_model(full, int(np.prod(data.x_train.shape[1:])), data.classes, rng)
    extra = list(callbacks)
    report = _Report(on_epoch) if on_epoch is not None else None
    if report is not None:
        extra.append(report)
    trainer = Trainer(model, build_optimizer(full), callbacks=extra, rng=rng)
    history = trainer.fit(data.x_train, data.t_train, epochs=epochs,
                          batch_size=int(full["batch_size"]),
                          validation=(data.x_val, data.t_val)).to_dict()
    curves = {key: [float(v) for v in history.get(key, [])]
              for key in ("train_accuracy", "val_accuracy", "loss")}
    diverged = bool(trainer.stop_reason and trainer.stop_reason.startswith("non-finite"))
    return {"params": dict(params), "seed": int(seed), "history": curves,
            "epochs_run": len(curves["val_accuracy"]),
            "stopped": bool(report is not None and report.stopped), "diverged": diverged,
            "duration_s": time.perf_counter() - started}
