"""The book's ``common/trainer.py``: ``Trainer(network, x_train, t_train, x_test, t_test, ...)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup.book import optimizers as book_optimizers
from groundup.callbacks import Callback
from groundup.rng import GlobalRNG
from groundup.train import Trainer as _Trainer


class Trainer:
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
        self.network = network
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.verbose = verbose
        self.optimizer = book_optimizers.get(optimizer, **(optimizer_param or {"lr": 0.01}))
        self.engine = _Trainer(network, self.optimizer, rng=GlobalRNG(), verbose=verbose,
                              fast=False)
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
