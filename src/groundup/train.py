"""Training loop: ``Trainer.fit`` with mini-batches, per-epoch metrics, callbacks.

Metrics recorded per epoch in ``History`` (DESIGN §9):
- ``loss``: mean of the epoch's mini-batch losses (taken from the training forward pass,
  no extra forward);
- ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy``: an
  evaluation-mode pass at epoch end over the whole set, or over the first
  ``eval_sample_num`` samples, as the book does;
- ``lr``: the optimizer's learning rate at epoch end.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from groundup._checks import (
    check_array,
    check_choice,
    check_labels,
    check_number,
    suggest,
    type_error,
    value_error,
)
from groundup.io import model_arrays
from groundup.models import GlobalRNG, make_rng

SAMPLINGS = ("epoch", "replacement")


class History:
    """Per-epoch metrics: ``history[key]`` is a list with one value per epoch."""

    def __init__(self) -> None:
        self.data: dict[str, list[float]] = {}

    def append(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.data.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        if key not in self.data:
            raise KeyError(f"History: no metric {key!r}. {suggest(key, self.data)}")
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> list[str]:
        return list(self.data)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.data.items()}

    def __len__(self) -> int:
        return len(self.data.get("epoch", []))


class Callback:
    """Hooks called by ``Trainer.fit``; set ``trainer.stop_training = True`` to stop."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class TerminateOnNaN(Callback):
    """Stop as soon as a mini-batch loss is NaN or infinite.

    The trainer checks the loss *before* the optimizer step, so the parameters stay those
    of the last good step.
    """

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            trainer.stop_training = True
            trainer.stop_reason = (f"non-finite loss ({loss}) at epoch {epoch + 1}, "
                                   f"step {step + 1}; parameters are those of the last finite "
                                   "step. Lower the learning rate?")


def _mode_for(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs (Keras semantics). With ``restore_best_weights`` the model ends with the
    parameters and batch-norm statistics of its best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if not isinstance(monitor, str):
            raise type_error("EarlyStopping", "monitor", "a metric name", monitor)
        self.monitor = monitor
        self.patience = check_number("EarlyStopping", "patience", patience, low=0, integer=True)
        self.min_delta = abs(check_number("EarlyStopping", "min_delta", min_delta))
        self.mode = check_choice("EarlyStopping", "mode", mode, ("auto", "min", "max"))
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, trainer: Trainer) -> None:
        self.best = math.inf if _mode_for(self.monitor, self.mode) == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_arrays: dict[str, np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if _mode_for(self.monitor, self.mode) == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise value_error("EarlyStopping", "monitor", "a recorded metric", self.monitor,
                              suggest(self.monitor, logs))
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_arrays = {k: v.copy() for k, v in model_arrays(trainer.model).items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            trainer.stop_training = True
            self.stopped_epoch = epoch
            trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                   f"{self.wait} epochs (best {self.best:.4f} at epoch "
                                   f"{self.best_epoch + 1})")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_arrays is not None:
            for key, array in model_arrays(trainer.model).items():
                array[...] = self.best_arrays[key]


class Trainer:
    """Mini-batch training of a model (DESIGN §3 contract) with an optimizer.

    Args:
        model: has ``params``, ``gradient(x, t)`` (setting ``last_loss``), ``predict``.
        optimizer: has ``update(params, grads)`` and an ``lr`` attribute.
        callbacks: extra ``Callback`` objects; ``TerminateOnNaN`` is always first.
        rng: a Generator or seed for shuffling; ``GlobalRNG()`` for the book's behaviour.
        verbose: print one line per epoch to stderr.
    """

    def __init__(self, model: Any, optimizer: Any, *, callbacks: Iterable[Callback] = (),
                 rng: Any = None, verbose: bool = False) -> None:
        self.model = model
        self.optimizer = optimizer
        self.callbacks = [TerminateOnNaN(), *callbacks]
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise type_error("Trainer", "callbacks", "Callback instances", cb)
        self.rng = make_rng(rng)
        self.verbose = verbose
        self.history = History()
        self.stop_training = False
        self.stop_reason: str | None = None
        self.epoch = 0

    def _check_xy(self, x: Any, t: Any, name: str) -> np.ndarray:
        check_array("Trainer", f"x_{name}", x)
        if len(x) == 0:
            raise value_error("Trainer", f"x_{name}", "non-empty", "=0 samples")
        classes = int(np.prod(getattr(self.model, "output_shape", (t.shape[-1],))))
        return check_labels("Trainer", t, x.shape[0], classes)

    def evaluate(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
        """Evaluation-mode loss (with the regularization penalty) and accuracy, in batches."""
        labels = self._check_xy(x, t, "eval")
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            y = self.model.predict(x[i:i + batch_size], train_flg=False)
            total += self.model.last_layer.forward(y, labels[i:i + batch_size]) * len(y)
            correct += int(np.count_nonzero(y.argmax(axis=1) == labels[i:i + batch_size]))
        reg = self.model.regularization_loss() if hasattr(self.model, "regularization_loss") else 0
        return {"loss": total / len(x) + reg, "accuracy": correct / len(x)}

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        return self.model.predict(x, train_flg=False, batch_size=batch_size)

    def _batches(self, n: int, batch_size: int, sampling: str, shuffle: bool):
        steps = max(math.ceil(n / batch_size), 1)
        if sampling == "replacement":
            for _ in range(steps):
                yield self.rng.choice(n, batch_size)
            return
        order = self.rng.permutation(n) if shuffle else np.arange(n)
        for i in range(steps):
            yield order[i * batch_size:(i + 1) * batch_size]

    def fit(self, x: np.ndarray, t: np.ndarray, *, epochs: int, batch_size: int = 100,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            validation_split: float | None = None,
            test: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool = True,
            sampling: str = "epoch", eval_sample_num: int | None = None,
            initial_epoch: int = 0) -> History:
        """Train for ``epochs`` epochs; returns the ``History``.

        ``sampling='epoch'`` visits every sample once per epoch (shuffled unless
        ``shuffle=False``); ``'replacement'`` draws ceil(N / batch_size) batches with
        replacement, the book's ``np.random.choice`` way. ``validation_split`` holds out
        the last fraction of ``x`` (Keras semantics; use ``groundup.data.train_val_split``
        for a stratified split).
        """
        check_number("Trainer.fit", "epochs", epochs, low=0, integer=True)
        check_number("Trainer.fit", "batch_size", batch_size, low=1, integer=True)
        check_choice("Trainer.fit", "sampling", sampling, SAMPLINGS)
        if validation is not None and validation_split is not None:
            raise value_error("Trainer.fit", "validation", "None when validation_split is given",
                              "=(arrays)")
        if validation_split is not None:
            check_number("Trainer.fit", "validation_split", validation_split, low=0, high=1,
                         low_open=True, high_open=True)
            cut = len(x) - int(round(len(x) * validation_split))
            x, t, validation = x[:cut], t[:cut], (x[cut:], t[cut:])
        self._check_xy(x, t, "train")
        sets = {"train": (x, t)}
        if validation is not None:
            self._check_xy(*validation, "val")
            sets["val"] = validation
        if test is not None:
            self._check_xy(*test, "test")
            sets["test"] = test
        self.stop_training, self.stop_reason = False, None
        saved_check = getattr(self.model, "check_finite", None)
        if saved_check is not None:
            self.model.check_finite = False  # validated once above, not per batch
        try:
            for cb in self.callbacks:
                cb.on_train_begin(self)
            for epoch in range(initial_epoch, epochs):
                self.epoch = epoch
                losses = self._run_epoch(x, t, epoch, batch_size, sampling, shuffle)
                if self.stop_training:  # stopped mid-epoch by a batch callback
                    break
                logs = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
                for name, (xs, ts) in sets.items():
                    if eval_sample_num is not None:
                        xs, ts = xs[:eval_sample_num], ts[:eval_sample_num]
                    metrics = self.evaluate(xs, ts)
                    if name != "train":
                        logs[f"{name}_loss"] = metrics["loss"]
                    logs[f"{name}_accuracy"] = metrics["accuracy"]
                logs["lr"] = float(self.optimizer.lr)
                self.history.append(logs)
                if self.verbose:
                    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in logs.items()), file=sys.stderr)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
                    break
            for cb in self.callbacks:
                cb.on_train_end(self)
        finally:
            if saved_check is not None:
                self.model.check_finite = saved_check
        if self.stop_reason and self.verbose:
            print(self.stop_reason, file=sys.stderr)
        return self.history

    def _run_epoch(self, x: np.ndarray, t: np.ndarray, epoch: int, batch_size: int,
                   sampling: str, shuffle: bool) -> list[float]:
        losses = []
        for step, idx in enumerate(self._batches(len(x), batch_size, sampling, shuffle)):
            grads = self.model.gradient(x[idx], t[idx])
            loss = float(self.model.last_loss)
            for cb in self.callbacks:
                cb.on_batch_end(self, epoch, step, loss)
            if self.stop_training:
                break
            self.optimizer.update(self.model.params, grads)
            losses.append(loss)
        return losses


class BookTrainer:
    """The book's ``common/trainer.py`` signature on groundup's ``Trainer``.

    Differences from the book, documented: metrics are taken at the end of each epoch
    (the book takes them after the first step of the next one), an epoch is
    ceil(N / mini_batch_size) steps, and the logged loss is that of the training forward
    pass (the book runs a second forward pass for it). Batches are drawn with replacement
    from the global ``np.random``, as in the book.
    """

    def __init__(self, network: Any, x_train: np.ndarray, t_train: np.ndarray,
                 x_test: np.ndarray, t_test: np.ndarray, epochs: int = 20,
                 mini_batch_size: int = 100, optimizer: str = "SGD",
                 optimizer_param: dict[str, Any] | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool = True) -> None:
        from groundup.book import optimizers as book_optimizers

        self.network = network
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.verbose = verbose
        self.optimizer = book_optimizers.get(optimizer, **(optimizer_param or {"lr": 0.01}))
        self.engine = Trainer(network, self.optimizer, rng=GlobalRNG(), verbose=verbose)
        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []

    def train(self) -> None:
        """Train, then print the final test accuracy (when verbose)."""

        class _Record(Callback):
            def on_batch_end(inner, trainer, epoch, step, loss):  # noqa: N805
                self.train_loss_list.append(loss)

        self.engine.callbacks.append(_Record())
        history = self.engine.fit(self.x_train, self.t_train, epochs=self.epochs,
                                  batch_size=self.batch_size, test=(self.x_test, self.t_test),
                                  sampling="replacement",
                                  eval_sample_num=self.evaluate_sample_num_per_epoch)
        self.train_acc_list = list(history.data.get("train_accuracy", []))
        self.test_acc_list = list(history.data.get("test_accuracy", []))
        if self.verbose:
            final = self.engine.evaluate(self.x_test, self.t_test)["accuracy"]
            print(f"=============== Final Test Accuracy ===============\ntest acc:{final}")
