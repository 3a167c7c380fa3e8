"""``TensorBoard``: epoch scalars and weight histograms as TensorBoard event files.

Written through ``tensorboardX`` (``pip install 'groundup[tensorboard]'``) in Keras'
layout: ``log_dir/<run>/train`` (``epoch_loss``, ``epoch_accuracy``,
``epoch_learning_rate``, a histogram per parameter) and ``log_dir/<run>/validation``
(``epoch_loss``, ``epoch_accuracy``), with step = epoch (1-based). Event files are
append-only by nature; on a resumed run the writers start with ``purge_step`` at the
checkpoint's epoch, so TensorBoard drops whatever a killed run had written past it and no
epoch appears twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from groundup.callbacks import Callback

__all__ = ["TensorBoard"]

# (history key, writer, tag) as Keras names them
SCALARS = (("loss", "train", "epoch_loss"), ("train_accuracy", "train", "epoch_accuracy"),
           ("lr", "train", "epoch_learning_rate"), ("val_loss", "validation", "epoch_loss"),
           ("val_accuracy", "validation", "epoch_accuracy"))


class TensorBoard(Callback):
    """Write ``log_dir/<run>/{train,validation}`` event files during ``fit``."""

    def __init__(self, log_dir: str | Path, run: str, *, histograms: bool = True) -> None:
        self.directory = Path(log_dir) / run
        self.histograms = bool(histograms)
        self.writers: dict[str, Any] = {}

    def on_train_begin(self, trainer: Any) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise RuntimeError("TensorBoard: needs tensorboardX; pip install "
                               "'groundup[tensorboard]'") from exc
        start = int(getattr(trainer, "epoch", 0))
        purge = start + 1 if start else None  # steps are 1-based epochs
        # event file names carry the time in whole seconds: a resume within the same second
        # would otherwise reopen (and truncate) the first run's file
        suffix = f".{time.time_ns()}"
        self.writers = {name: SummaryWriter(str(self.directory / name), purge_step=purge,
                                            filename_suffix=suffix)
                        for name in ("train", "validation")}

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        step = epoch + 1
        for key, writer, tag in SCALARS:
            if key in logs:
                self.writers[writer].add_scalar(tag, float(logs[key]), step)
        if self.histograms:
            for name, value in trainer.model.params.items():
                self.writers["train"].add_histogram(name, value, step)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, trainer: Any) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
