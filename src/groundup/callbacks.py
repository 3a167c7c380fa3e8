"""Callbacks for :class:`groundup.train.Trainer` (Keras names and semantics).

A callback overrides any of the hooks below; ``trainer.stop_training = True`` stops the
run. Callbacks with state that matters for an exact resume (a best value, a patience
counter, saved weights) return it from ``state_dict()``: a flat dict of JSON values and
NumPy arrays, written into the run's checkpoint and handed back to ``load_state_dict``.

Metric names in ``logs`` (what ``monitor`` may name): ``loss``, ``train_accuracy``,
``val_loss``, ``val_accuracy``, ``test_loss``, ``test_accuracy``, ``lr``, ``epoch``.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from groundup._checks import check_choice, check_number, suggest, type_error, value_error
from groundup.io import model_arrays, write_text_atomic

if TYPE_CHECKING:
    from groundup.train import Trainer

__all__ = [
    "Callback", "TerminateOnNaN", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
    "ReduceLROnPlateau", "CSVLogger", "JSONLogger", "ProgressBar",
]


class Callback:
    """Hooks called by ``Trainer.fit``; ``epoch`` and ``step`` count from 0."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_begin(self, trainer: Trainer, epoch: int, step: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for an exact resume (JSON values or arrays)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def _monitored(owner: str, monitor: str, logs: Mapping[str, float]) -> float:
    if monitor not in logs:
        raise value_error(owner, "monitor", "a recorded metric", monitor,
                          suggest(monitor, [k for k in logs if k != "epoch"]))
    return float(logs[monitor])


def _check_monitor(owner: str, monitor: Any) -> str:
    if not isinstance(monitor, str):
        raise type_error(owner, "monitor", "a metric name such as 'val_loss'", monitor)
    return monitor


def _mode_for(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class _Best:
    """A monitored value with Keras' improvement rule; NaN never improves."""

    def __init__(self, owner: str, monitor: Any, mode: str, min_delta: float) -> None:
        self.monitor = _check_monitor(owner, monitor)
        self.mode = _mode_for(monitor, check_choice(owner, "mode", mode, ("auto", "min", "max")))
        self.min_delta = abs(float(check_number(owner, "min_delta", min_delta)))
        self.reset()

    def reset(self) -> None:
        self.value = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.value - self.min_delta
        return value > self.value + self.min_delta


class TerminateOnNaN(Callback):
    """Stop as soon as a mini-batch loss is NaN or infinite.

    The trainer calls it *before* the optimizer step, so the parameters stay those of the
    last good step, and no checkpoint is written for the broken epoch: the last one on
    disk is the last good one.
    """

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            trainer.stop_training = True
            trainer.stop_reason = (f"non-finite loss ({loss}) at epoch {epoch + 1}, "
                                   f"step {step + 1}; parameters are those of the last finite "
                                   "step. Lower the learning rate?")
            trainer.diverged = True


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs, as Keras 3's ``EarlyStopping``.

    At the end of every epoch from ``start_from_epoch`` on: ``wait += 1``; an improvement
    on the best value so far makes it the best (and, with ``restore_best_weights``, keeps a
    copy of the parameters and batch-norm statistics) and sets ``wait = 0`` — but only if
    it also beats ``baseline`` when one is given; otherwise, once ``wait >= patience``
    (and after the first epoch), training stops. So ``patience=2`` stops two epochs after
    the best one. With ``restore_best_weights`` the model ends with the weights of the best
    epoch (of the first monitored epoch if none improved) whether or not training stopped
    early; ``restored_epoch`` then says which epoch (0-based).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False,
                 baseline: float | None = None, start_from_epoch: int = 0) -> None:
        owner = "EarlyStopping"
        self._best = _Best(owner, monitor, mode, min_delta)
        self.monitor = monitor
        self.patience = check_number(owner, "patience", patience, low=0, integer=True)
        self.min_delta = self._best.min_delta
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = None if baseline is None else float(check_number(owner, "baseline",
                                                                         baseline))
        self.start_from_epoch = check_number(owner, "start_from_epoch", start_from_epoch,
                                             low=0, integer=True)
        self.on_train_begin(None)

    @property
    def best(self) -> float:
        return self._best.value

    def on_train_begin(self, trainer: Trainer | None) -> None:
        self._best.reset()
        self.best_epoch: int | None = None
        self.best_arrays: dict[str, np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.restored_epoch: int | None = None

    def _beats_baseline(self, value: float) -> bool:
        if self.baseline is None:
            return True
        return value < self.baseline - self.min_delta if self._best.mode == "min" \
            else value > self.baseline + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored("EarlyStopping", self.monitor, logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_arrays is None:
            self._keep(trainer, epoch)  # nothing better seen yet: these are the best
        self.wait += 1
        if self._best.improved(value):
            self._best.value = value
            self._keep(trainer, epoch)
            if self._beats_baseline(value):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            trainer.stop_training = True
            self.stopped_epoch = epoch
            best = "none" if not math.isfinite(self.best) else (
                f"{self.best:.4f} at epoch {self.best_epoch + 1}")
            trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                   f"{self.wait} epochs (best {best})")

    def _keep(self, trainer: Trainer, epoch: int) -> None:
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_arrays = {k: v.copy() for k, v in model_arrays(trainer.model).items()}

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_arrays is not None:
            for key, array in model_arrays(trainer.model).items():
                array[...] = self.best_arrays[key]
            self.restored_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch,
                                 "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        for key, array in (self.best_arrays or {}).items():
            state[f"best/{key}"] = array
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        # ``wait`` counts the epochs since the best one, in checkpoints of every version
        self._best.value = float(state["best"])
        self.best_epoch, self.wait = state["best_epoch"], int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]
        arrays = {k[len("best/"):]: np.asarray(v) for k, v in state.items()
                  if k.startswith("best/")}
        self.best_arrays = arrays or None


class ModelCheckpoint(Callback):
    """Save the model (``groundup.io.save``, atomic) at the end of epochs.

    Args:
        filepath: the ``.npz`` path; may hold ``{epoch}`` and any metric, e.g.
            ``"ckpt/model-{epoch:03d}-{val_accuracy:.3f}.npz"``.
        monitor, mode, min_delta: what "best" means when ``save_best_only``.
        save_best_only: write only when ``monitor`` improved (Keras semantics).
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss",
                 mode: str = "auto", save_best_only: bool = False,
                 min_delta: float = 0.0) -> None:
        if not isinstance(filepath, str | os.PathLike):
            raise type_error("ModelCheckpoint", "filepath", "a path", filepath)
        self.filepath = str(filepath)
        self._best = _Best("ModelCheckpoint", monitor, mode, min_delta)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.last_saved: Path | None = None
        self.best_epoch: int | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self._best.reset()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        from groundup import io

        if self.save_best_only:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if not self._best.improved(value):
                return
            self._best.value, self.best_epoch = value, epoch
        try:
            path = self.filepath.format(**{**logs, "epoch": epoch + 1})
        except (KeyError, ValueError, IndexError) as exc:
            raise value_error("ModelCheckpoint", "filepath", "a pattern naming recorded "
                              f"metrics ({', '.join(logs)})", self.filepath) from exc
        self.last_saved = io.save(trainer.model, path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._best.value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._best.value, self.best_epoch = float(state["best"]), state["best_epoch"]


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(t)`` before each epoch (``unit='epoch'``, t = epoch
    index) or each update (``unit='step'``, t = updates so far), any ``groundup.schedules``
    schedule or a plain function ``t -> lr``.
    """

    def __init__(self, schedule: Callable[[int], float], unit: str = "epoch") -> None:
        if not callable(schedule):
            raise type_error("LearningRateScheduler", "schedule", "a callable step -> lr",
                             schedule, "e.g. groundup.schedules.CosineDecay(0.1, period=10)")
        self.schedule = schedule
        self.unit = check_choice("LearningRateScheduler", "unit", unit, ("epoch", "step"))

    def _set(self, trainer: Trainer, t: int) -> None:
        lr = self.schedule(t)
        check_number("LearningRateScheduler", "schedule(t)", lr, low=0.0)
        trainer.optimizer.lr = float(lr)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        if self.unit == "epoch":
            self._set(trainer, epoch)

    def on_batch_begin(self, trainer: Trainer, epoch: int, step: int) -> None:
        if self.unit == "step":
            self._set(trainer, trainer.global_step)


class ReduceLROnPlateau(Callback):
    """Multiply the optimizer's lr by ``factor`` when ``monitor`` stops improving for
    ``patience`` epochs; the rule of :class:`groundup.schedules.ReduceLROnPlateau`.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0) -> None:
        from groundup.schedules import ReduceLROnPlateau as Policy

        self.monitor = _check_monitor("ReduceLROnPlateau", monitor)
        mode = _mode_for(monitor, check_choice("ReduceLROnPlateau", "mode", mode,
                                               ("auto", "min", "max")))
        self._make = lambda lr: Policy(lr, mode=mode, factor=factor, patience=patience,
                                       min_delta=min_delta, cooldown=cooldown, min_lr=min_lr)
        self.policy = self._make(1.0)  # validates the arguments now

    def on_train_begin(self, trainer: Trainer) -> None:
        self.policy = self._make(float(trainer.optimizer.lr))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        self.policy.lr = float(trainer.optimizer.lr)  # another callback may have changed it
        trainer.optimizer.lr = self.policy.step(value)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.item() for k, v in self.policy.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict({k: np.asarray(v) for k, v in state.items()})


def history_csv(history: Mapping[str, list[float]]) -> str:
    """The history as CSV text, one row per epoch."""
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = list(history)
    writer.writerow(keys)
    for row in zip(*(history[k] for k in keys), strict=True):
        writer.writerow(row)
    return buffer.getvalue()


class CSVLogger(Callback):
    """Rewrite ``path`` atomically after each epoch with the whole history as CSV."""

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, str | os.PathLike):
            raise type_error("CSVLogger", "path", "a path", path)
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        write_text_atomic(self.path, history_csv(trainer.history.to_dict()))


class JSONLogger(CSVLogger):
    """Rewrite ``path`` atomically after each epoch with the whole history as JSON."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        write_text_atomic(self.path, json.dumps(trainer.history.to_dict(), indent=2) + "\n")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


# (log key, column title, format): the columns an epoch line shows, in this order
_COLUMNS = (("loss", "loss", "{:9.4f}"), ("train_accuracy", "train_acc", "{:9.4f}"),
            ("val_loss", "val_loss", "{:9.4f}"), ("val_accuracy", "val_acc", "{:8.4f}"),
            ("lr", "lr", "{:9.2e}"))


def format_logs(logs: Mapping[str, Any], epochs: int | None = None,
                penalty: bool = False) -> str:
    """One aligned line per epoch: ``epoch  3/10  loss   0.2514  train_acc   0.9300 ...``.

    Fixed precision, so the columns line up from epoch to epoch. Test metrics are left out
    (they are in the history; the final test result is printed once at the end). With
    ``penalty`` the loss column is titled ``loss+pen``: it includes the weight penalty.
    """
    width = len(str(epochs)) if epochs else 3
    epoch = f"{logs.get('epoch', '?'):>{width}}" + (f"/{epochs}" if epochs else "")
    parts = [f"epoch {epoch}"]
    for key, title, fmt in _COLUMNS:
        if key in logs and logs[key] is not None:
            name = "loss+pen" if key == "loss" and penalty else title
            parts.append(f"{name} {fmt.format(logs[key])}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch on a terminal; one line per epoch otherwise.

    ``mode='auto'`` draws the bar only when ``stream`` is a terminal, ``CI`` is not set and
    tqdm is installed (``pip install 'groundup[progress]'``); ``'lines'`` always prints one
    line per epoch; ``'bar'`` asks for the bar.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.mode = check_choice("ProgressBar", "mode", mode, ("auto", "bar", "lines"))
        self.stream = stream
        self._bar: Any = None

    def _use_bar(self, stream: TextIO) -> bool:
        if self.mode == "lines":
            return False
        try:
            import tqdm  # noqa: F401
        except ModuleNotFoundError:
            return False
        return self.mode == "bar" or (stream.isatty() and not _ci())

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        stream = self.stream or sys.stderr
        if self._use_bar(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=trainer.steps_per_epoch, file=stream, leave=False,
                             desc=f"epoch {epoch + 1}/{trainer.epochs}", unit="step")
            self._bar.update(trainer.step)

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if step % 10 == 0:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        penalty = bool(getattr(trainer.model, "regularizers", None))
        print(format_logs(logs, trainer.epochs, penalty), file=self.stream or sys.stderr,
              flush=True)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
