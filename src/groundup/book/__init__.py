"""The book's names with the book's signatures ("Deep Learning from Scratch", ch. 3-8).

Programs written for the book's ``common/`` and ``dataset/`` modules run with their imports
changed to ``from groundup.book import ...``. The book's semantics are kept: the global
``np.random`` (so ``np.random.seed`` works), scale-at-test dropout, batch norm with
momentum 0.9 and eps 1e-6, the book's optimizer formulas, ``'xavier'`` = N(0, 1/n_in),
the ``dropout_ration`` spelling, float64 networks.

Documented differences from the book:
- one-hot labels from ``load_mnist`` are float32, and normalized images float32;
- ``Relu.backward`` does not modify its argument;
- max pooling with padding pads with -inf, not 0;
- batch norm on convolution output normalizes per channel;
- ``SoftmaxWithLoss`` computes its loss from the log-softmax (exact; no 1e-7 guard);
- ``save_params``/``load_params`` write and read ``.npz`` content (no pickle), at
  exactly the file name given;
- ``load_mnist`` verifies checksums, downloads from working mirrors, caches outside the
  source tree, and falls back to the bundled real MNIST sample when offline.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from groundup import io, models
from groundup.book.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from groundup.book.trainer import Trainer
from groundup.conv import Convolution, Pooling, col2im, im2col
from groundup.data import load_mnist
from groundup.functions import (
    cross_entropy_error,
    identity_function,
    mean_squared_error,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    step_function,
)
from groundup.layers import Affine, BatchNormalization, Relu, Sigmoid, SoftmaxWithLoss
from groundup.layers import Dropout as _Dropout
from groundup.numerical import gradient_descent, numerical_diff, numerical_gradient
from groundup.rng import GlobalRNG

__all__ = [
    "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
    "softmax", "mean_squared_error", "cross_entropy_error", "numerical_diff",
    "numerical_gradient", "gradient_descent", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss",
    "Dropout", "BatchNormalization", "Convolution", "Pooling", "im2col", "col2im",
    "TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet", "DeepConvNet",
    "Trainer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "load_mnist",
    "shuffle_dataset", "smooth_curve",
]

_GLOBAL = GlobalRNG()
_BOOK = {"rng": _GLOBAL, "dtype": np.float64, "convention": "book"}


class Dropout(_Dropout):
    """The book's dropout: mask from ``np.random.rand``, output scaled by (1 - p) at test."""

    def __init__(self, dropout_ratio: float = 0.5) -> None:
        super().__init__(dropout_ratio, inverted=False, rng=_GLOBAL)


def shuffle_dataset(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``x`` and ``t`` with one permutation from the global ``np.random``."""
    permutation = np.random.permutation(x.shape[0])  # noqa: NPY002 - the book's global RNG
    return x[permutation], t[permutation]


def smooth_curve(x: np.ndarray) -> np.ndarray:
    """The book's loss-curve smoother: a Kaiser-window (β = 2, width 11) moving average.

    The result is 10 points shorter than ``x``, as in the book.
    """
    window_len = 11
    x = np.asarray(x, dtype=np.float64)
    padded = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), padded, mode="valid")
    return y[5:len(y) - 5]


class _ParamsFile:
    """``save_params``/``load_params`` of the book's conv nets, as ``.npz`` (no pickle)."""

    def save_params(self, file_name: str | os.PathLike = "params.npz") -> None:
        io.save(self, file_name)

    def load_params(self, file_name: str | os.PathLike = "params.npz") -> None:
        arrays, _ = io.read_npz(file_name, io.MODEL_FORMAT)
        io.set_model_arrays(self, arrays, str(file_name))


class TwoLayerNet(_ParamsFile, models.TwoLayerNet):
    """Chapter 4's two-layer net (sigmoid); ``activation='relu'`` gives chapter 5's."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, activation: str = "sigmoid") -> None:
        super().__init__(input_size, hidden_size, output_size, weight_init_std,
                         activation=activation, **_BOOK)


class MultiLayerNet(_ParamsFile, models.MultiLayerNet):
    """The book's ``common/multi_layer_net.py``."""

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0) -> None:
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, **_BOOK)


class MultiLayerNetExtend(_ParamsFile, models.MultiLayerNetExtend):
    """The book's ``common/multi_layer_net_extend.py`` (batch norm, dropout)."""

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False) -> None:
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, use_dropout, dropout_ration,
                         use_batchnorm, **_BOOK)


class SimpleConvNet(_ParamsFile, models.SimpleConvNet):
    """The book's ``ch07/simple_convnet.py``."""

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param: dict[str, int] | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: float = 0.01) -> None:
        super().__init__(input_dim, conv_param, hidden_size, output_size, weight_init_std,
                         **_BOOK)


class DeepConvNet(_ParamsFile, models.DeepConvNet):
    """The book's ``ch08/deep_convnet.py``."""

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param_1: dict | None = None, conv_param_2: dict | None = None,
                 conv_param_3: dict | None = None, conv_param_4: dict | None = None,
                 conv_param_5: dict | None = None, conv_param_6: dict | None = None,
                 hidden_size: int = 50, output_size: int = 10) -> None:
        super().__init__(input_dim, conv_param_1, conv_param_2, conv_param_3, conv_param_4,
                         conv_param_5, conv_param_6, hidden_size, output_size, **_BOOK)
