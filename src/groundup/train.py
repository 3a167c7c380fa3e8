"""Training loop: ``Trainer.fit`` with mini-batches, per-epoch metrics, callbacks.

Metrics recorded per epoch in ``History`` (docs/design.md, "History"):
- ``loss``: mean of the epoch's mini-batch losses (taken from the training forward pass,
  no extra forward);
- ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy``: an
  evaluation-mode pass at epoch end over the whole set, or over the first
  ``eval_sample_num`` samples, as the book does;
- ``lr``: the optimizer's learning rate at epoch end.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from groundup import checkpoint
from groundup._checks import (
    check_array,
    check_choice,
    check_labels,
    check_number,
    suggest,
    type_error,
    value_error,
)
from groundup.callbacks import Callback, ProgressBar, TerminateOnNaN
from groundup.io import set_model_arrays
from groundup.rng import make_rng

__all__ = ["History", "Trainer"]

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


class Trainer:
    """Mini-batch training of a model (the contract of docs/design.md) with an optimizer.

    Args:
        model: has ``params``, ``gradient(x, t)`` (setting ``last_loss``), ``predict``.
        optimizer: has ``update(params, grads)`` and an ``lr`` attribute.
        callbacks: extra ``Callback`` objects; ``TerminateOnNaN`` is always first.
        rng: a Generator or seed for shuffling; ``GlobalRNG()`` for the book's behaviour.
        verbose: report progress on stderr (a :class:`ProgressBar` unless one is given).
        fast: train and evaluate through the fast engine (:mod:`groundup.fast`), which
            computes what the reference layers compute, on the model's own arrays;
            ``False`` runs the reference path. Models other than ``Sequential`` (and the
            book's networks) always run their own code.

    During ``fit``, ``epoch``, ``step`` (completed updates in this epoch), ``global_step``,
    ``epochs`` and ``steps_per_epoch`` describe where training is.
    """

    def __init__(self, model: Any, optimizer: Any, *, callbacks: Iterable[Callback] = (),
                 rng: Any = None, verbose: bool = False, fast: bool = True) -> None:
        if not isinstance(fast, bool):
            raise type_error("Trainer", "fast", "a bool", fast)
        self.model = model
        self.optimizer = optimizer
        self.callbacks = [TerminateOnNaN(), *callbacks]
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise type_error("Trainer", "callbacks", "Callback instances", cb)
        if verbose and not any(isinstance(cb, ProgressBar) for cb in self.callbacks):
            self.callbacks.append(ProgressBar())
        self.rng = make_rng(rng)
        self.verbose = verbose
        self.history = History()
        self.stop_training = False
        self.stop_reason: str | None = None
        self.diverged = False
        self.epoch = self.step = self.global_step = 0
        self.epochs = self.steps_per_epoch = 0
        self.checkpoint_path: Path | None = None
        self._resume: checkpoint.Checkpoint | None = None
        self._resumed: checkpoint.Checkpoint | None = None
        self._interrupted = False
        self.fast = fast
        self._net, self._update = model, getattr(optimizer, "update", None)
        if fast and _compilable(model):
            from groundup import fast as engine

            self._net = engine.compile(model)
            if optimizer is not None:  # a Trainer only to evaluate may have none
                self._update = engine.optimizer(optimizer, self._net).update

    def _check_xy(self, x: Any, t: Any, name: str) -> np.ndarray:
        check_array("Trainer", f"x_{name}", x)
        if len(x) == 0:
            raise value_error("Trainer", f"x_{name}", "non-empty", "=0 samples")
        expected = getattr(self.model, "input_shape", None)
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            shape = ", ".join(map(str, expected))
            raise value_error("Trainer", f"x_{name}", f"of shape (N, {shape}) to match the "
                              "model's input", f"={x.shape}",
                              "flatten images for dense models, keep (N, C, H, W) for conv.")
        classes = int(np.prod(getattr(self.model, "output_shape", (t.shape[-1],))))
        return check_labels("Trainer", t, x.shape[0], classes)

    def evaluate(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
        """Evaluation-mode loss (with the regularization penalty) and accuracy, in batches."""
        return self._evaluate(x, self._check_xy(x, t, "eval"), batch_size)

    def _evaluate(self, x: np.ndarray, labels: np.ndarray,
                  batch_size: int = 1000) -> dict[str, float]:
        """``evaluate`` on inputs already checked, with class-index ``labels``."""
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            y = self._net.predict(x[i:i + batch_size], train_flg=False)
            total += self._net.last_layer.forward(y, labels[i:i + batch_size]) * len(y)
            correct += int(np.count_nonzero(y.argmax(axis=1) == labels[i:i + batch_size]))
        reg = self.model.regularization_loss() if hasattr(self.model, "regularization_loss") else 0
        return {"loss": total / len(x) + reg, "accuracy": correct / len(x)}

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        return self._net.predict(x, train_flg=False, batch_size=batch_size)

    # -- checkpoints -------------------------------------------------------------------

    def _generators(self) -> dict[str, np.random.Generator]:
        gens = {"rng": self.rng}
        model_rng = getattr(self.model, "rng", None)
        if isinstance(model_rng, np.random.Generator) and model_rng is not self.rng:
            gens["model_rng"] = model_rng
        if not all(isinstance(g, np.random.Generator) for g in gens.values()):
            raise RuntimeError("Trainer: checkpoints need a numpy.random.Generator as rng "
                               "(the book's global np.random state cannot be saved); pass "
                               "rng=<seed>.")
        return gens

    def _stateful(self) -> list[Callback]:
        """Callbacks whose state a checkpoint keeps (those with a non-empty state_dict)."""
        return [cb for cb in self.callbacks if cb.state_dict()]

    def save_checkpoint(self, directory: str | os.PathLike, *, losses: list[float] | None = None,
                        epoch_rng: dict[str, Any] | None = None) -> Path:
        """Write model, optimizer, RNG, history and callback state to ``directory``."""
        arrays, cb_states = checkpoint.pack_callbacks(self._stateful())
        state = {
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "epoch_losses": list(losses or []), "epochs": self.epochs,
            "rng": {k: g.bit_generator.state for k, g in self._generators().items()},
            "epoch_rng": epoch_rng, "history": self.history.to_dict(),
            "stopped": self.stop_training, "stop_reason": self.stop_reason,
            "callbacks": cb_states,
        }
        return checkpoint.save(directory, model=self.model, optimizer=self.optimizer,
                               arrays=arrays, state=state)

    def load_checkpoint(self, directory: str | os.PathLike) -> checkpoint.Checkpoint:
        """Restore a checkpoint now; the next ``fit`` continues from it exactly."""
        ckpt = checkpoint.load(directory)
        saved = [c["class"] for c in ckpt.state["callbacks"]]
        mine = [type(cb).__name__ for cb in self._stateful()]
        if saved != mine:
            raise value_error("Trainer", "callbacks", f"with state: the checkpoint's {saved}",
                              f"={mine}", f"checkpoint: {ckpt.path}")
        set_model_arrays(self.model, ckpt.model, str(ckpt.path / "model.npz"))
        self.optimizer.load_state_dict(ckpt.optimizer)
        gens = self._generators()
        if set(gens) != set(ckpt.state["rng"]):
            raise value_error("Trainer", "rng", "the checkpoint's generators "
                              f"{sorted(ckpt.state['rng'])}", f"={sorted(gens)}",
                              f"checkpoint: {ckpt.path}")
        for key, gen in gens.items():
            gen.bit_generator.state = ckpt.state["rng"][key]
        self.history = History()
        self.history.data = {k: list(v) for k, v in ckpt.state["history"].items()}
        self.epoch, self.step = int(ckpt.state["epoch"]), int(ckpt.state["step"])
        self.global_step = int(ckpt.state["global_step"])
        self._resume = ckpt
        return ckpt

    def _restore_callbacks(self, ckpt: checkpoint.Checkpoint) -> None:
        checkpoint.unpack_callbacks(ckpt, self._stateful())

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._interrupted = True

    # -- training ----------------------------------------------------------------------

    def fit(self, x: np.ndarray, t: np.ndarray, *, epochs: int, batch_size: int = 100,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            validation_split: float | None = None,
            test: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool = True,
            sampling: str = "epoch", eval_sample_num: int | None = None,
            initial_epoch: int = 0, checkpoint_dir: str | os.PathLike | None = None,
            resume: bool = False) -> History:
        """Train until epoch ``epochs``; returns the ``History``.

        ``sampling='epoch'`` visits every sample once per epoch (shuffled unless
        ``shuffle=False``); ``'replacement'`` draws ceil(N / batch_size) batches with
        replacement, the book's ``np.random.choice`` way. ``validation_split`` holds out
        the last fraction of ``x`` (Keras semantics; use ``groundup.data.train_val_split``
        for a stratified split).

        With ``checkpoint_dir`` a checkpoint is written at the end of every epoch, and
        Ctrl-C (SIGINT) finishes the current update, writes a checkpoint of that exact
        point and then raises ``KeyboardInterrupt``. ``resume=True`` (or an earlier
        ``load_checkpoint``) continues from the checkpoint: the final parameters equal
        those of an uninterrupted run with the same seed.
        """
        sets = self._data_sets(x, t, validation, validation_split, test)
        x, t = sets["train"][0], sets["train"][2]
        check_number("Trainer.fit", "epochs", epochs, low=0, integer=True)
        check_number("Trainer.fit", "batch_size", batch_size, low=1, integer=True)
        check_choice("Trainer.fit", "sampling", sampling, SAMPLINGS)
        self.epochs = int(epochs)
        self.steps_per_epoch = max(math.ceil(len(x) / batch_size), 1)
        start_epoch, epoch_losses, epoch_rng = self._start(initial_epoch, checkpoint_dir, resume)
        with self._sigint_checkpoints(checkpoint_dir), self._unchecked_batches():
            for cb in self.callbacks:
                cb.on_train_begin(self)
            if self._resumed is not None:
                self._restore_callbacks(self._resumed)
            for epoch in range(start_epoch, epochs):
                if self.stop_training:
                    break
                self.epoch = epoch
                losses = self._run_epoch(x, t, epoch, batch_size, sampling, shuffle,
                                         epoch_losses, epoch_rng)
                epoch_losses, epoch_rng = [], None
                if self.stop_training:  # stopped mid-epoch by a batch callback
                    break
                logs = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        **self._epoch_metrics(sets, eval_sample_num),
                        "lr": float(self.optimizer.lr)}
                self.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                self.epoch, self.step = epoch + 1, 0
                if checkpoint_dir is not None:
                    self.save_checkpoint(checkpoint_dir)
                if self._interrupted:
                    raise KeyboardInterrupt
            for cb in self.callbacks:
                cb.on_train_end(self)
        if self.stop_reason and self.verbose:
            print(self.stop_reason, file=sys.stderr)
        return self.history

    def _data_sets(self, x: np.ndarray, t: np.ndarray, validation: Any,
                   validation_split: float | None,
                   test: Any) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``{name: (x, labels, t)}`` for train, val and test, each checked once here (the
        per-epoch evaluation reuses the class-index labels)."""
        if validation is not None and validation_split is not None:
            raise value_error("Trainer.fit", "validation", "None when validation_split is given",
                              "=(arrays)")
        if validation_split is not None:
            check_number("Trainer.fit", "validation_split", validation_split, low=0, high=1,
                         low_open=True, high_open=True)
            cut = len(x) - int(round(len(x) * validation_split))
            x, t, validation = x[:cut], t[:cut], (x[cut:], t[cut:])
        given = {"train": (x, t), "val": validation, "test": test}
        return {name: (pair[0], self._check_xy(*pair, name), pair[1])
                for name, pair in given.items() if pair is not None}

    def _start(self, initial_epoch: int, checkpoint_dir: Any,
               resume: bool) -> tuple[int, list[float], dict[str, Any] | None]:
        """Where this ``fit`` starts: (epoch, losses of the epoch so far, its shuffle RNG)."""
        if resume and self._resume is None:
            if checkpoint_dir is None:
                raise value_error("Trainer.fit", "checkpoint_dir", "a directory with resume=True",
                                  None)
            self.load_checkpoint(checkpoint_dir)
        self.checkpoint_path = None if checkpoint_dir is None else Path(checkpoint_dir)
        if checkpoint_dir is not None:
            self._generators()  # fail now, not after the first epoch
        self._resumed, self._resume = self._resume, None
        self.stop_training, self.stop_reason, self.diverged = False, None, False
        if self._resumed is None:
            self.step = 0
            self.global_step = initial_epoch * self.steps_per_epoch
            return initial_epoch, [], None
        state = self._resumed.state
        self.stop_training, self.stop_reason = bool(state["stopped"]), state["stop_reason"]
        return self.epoch, list(state["epoch_losses"]), state["epoch_rng"]

    def _epoch_metrics(self, sets: dict[str, tuple], eval_sample_num: int | None
                       ) -> dict[str, float]:
        """``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_*`` (evaluation mode)."""
        logs = {}
        for name, (xs, labels, _) in sets.items():
            if eval_sample_num is not None:
                xs, labels = xs[:eval_sample_num], labels[:eval_sample_num]
            metrics = self._evaluate(xs, labels)
            if name != "train":
                logs[f"{name}_loss"] = metrics["loss"]
            logs[f"{name}_accuracy"] = metrics["accuracy"]
        return logs

    @contextlib.contextmanager
    def _unchecked_batches(self) -> Iterator[None]:
        """The data were validated once by ``fit``: the model skips its per-batch check."""
        saved = getattr(self._net, "check_finite", None)
        if saved is not None:
            self._net.check_finite = False
        try:
            yield
        finally:
            if saved is not None:
                self._net.check_finite = saved

    @contextlib.contextmanager
    def _sigint_checkpoints(self, checkpoint_dir: Any) -> Iterator[None]:
        """With a checkpoint directory, Ctrl-C finishes the current update, writes a
        checkpoint of that point and then raises ``KeyboardInterrupt`` (a second Ctrl-C
        stops at once)."""
        self._interrupted = False
        if checkpoint_dir is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run_epoch(self, x: np.ndarray, t: np.ndarray, epoch: int, batch_size: int,
                   sampling: str, shuffle: bool, losses: list[float],
                   epoch_rng: dict[str, Any] | None) -> list[float]:
        n, start = len(x), self.step
        if sampling == "replacement":
            order = None
        elif not shuffle:
            order = np.arange(n)
        else:
            if start and epoch_rng is not None:  # resuming mid-epoch: draw the same order
                current = self.rng.bit_generator.state
                self.rng.bit_generator.state = epoch_rng
            if isinstance(self.rng, np.random.Generator):
                epoch_rng = self.rng.bit_generator.state
            order = self.rng.permutation(n)
            if start and epoch_rng is not None:
                self.rng.bit_generator.state = current
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        # a diverging run is reported once, by TerminateOnNaN, not as warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._run_steps(x, t, epoch, batch_size, order, start, losses, epoch_rng)
        return losses

    def _run_steps(self, x: np.ndarray, t: np.ndarray, epoch: int, batch_size: int,
                   order: np.ndarray | None, start: int, losses: list[float],
                   epoch_rng: dict[str, Any] | None) -> None:
        n = len(x)
        for step in range(start, self.steps_per_epoch):
            self.step = step
            for cb in self.callbacks:
                cb.on_batch_begin(self, epoch, step)
            if order is None:
                idx = self.rng.choice(n, batch_size)
            else:
                idx = order[step * batch_size:(step + 1) * batch_size]
            grads = self._net.gradient(x[idx], t[idx])
            loss = float(self._net.last_loss)
            for cb in self.callbacks:
                cb.on_batch_end(self, epoch, step, loss)
            if self.stop_training:
                break
            self._update(self._net.params, grads)
            losses.append(loss)
            self.step, self.global_step = step + 1, self.global_step + 1
            if self._interrupted and self.checkpoint_path is not None:
                if self.step < self.steps_per_epoch:
                    self.save_checkpoint(self.checkpoint_path, losses=losses, epoch_rng=epoch_rng)
                    raise KeyboardInterrupt


def _compilable(model: Any) -> bool:
    from groundup.models import Sequential

    return isinstance(model, Sequential)
