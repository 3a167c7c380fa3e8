"""The book's networks, as Sequential models built with the book's signatures.

TwoLayerNet (ch. 4/5), MultiLayerNet and MultiLayerNetExtend (ch. 6), SimpleConvNet (ch. 7)
and DeepConvNet (ch. 8) take the book's arguments and follow either convention of
:class:`~groundup.sequential.Sequential` (imported here too, with ``from_config``, which
rebuilds any of them from ``get_config()``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup import initializers, regularizers
from groundup._checks import check_choice, check_number, type_error, value_error
from groundup.layers import ACTIVATIONS
from groundup.sequential import Sequential, jsonable

__all__ = ["DeepConvNet", "MultiLayerNet", "MultiLayerNetExtend", "Sequential", "SimpleConvNet",
           "TwoLayerNet", "from_config"]


class _BookNet(Sequential):
    """Shared plumbing of the book's networks: remember constructor arguments for saving."""

    def _remember(self, **args: Any) -> None:
        self._args = {k: jsonable(v) for k, v in args.items()}

    def get_config(self) -> dict[str, Any]:
        args = dict(self._args, dtype=self.dtype.name, convention=self.convention)
        return {"class": type(self).__name__, "args": args}


def _common(rng: Any, dtype: Any, convention: str) -> dict[str, Any]:
    return {"rng": rng, "dtype": dtype, "convention": convention}


class TwoLayerNet(_BookNet):
    """The book's ch. 4/5 two-layer net: Affine → activation → Affine → softmax loss.

    ``activation='sigmoid'`` is chapter 4's network, ``'relu'`` chapter 5's. Weights are
    N(0, weight_init_std²), or from a named initializer (e.g. 'he_normal'). ``predict``
    returns the scores (apply ``softmax`` for probabilities); accuracy and loss are the
    same either way.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: Any = 0.01, *, activation: str = "sigmoid", rng: Any = None,
                 dtype: Any = np.float32, convention: str = "groundup") -> None:
        super().__init__((input_size,), **_common(rng, dtype, convention))
        self._remember(input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                       weight_init_std=weight_init_std, activation=activation)
        self.add("dense", units=hidden_size, init=weight_init_std)
        self.add(activation)
        self.add("dense", units=output_size, init=weight_init_std)


class MultiLayerNetExtend(_BookNet):
    """The book's fully connected net with optional batch norm and dropout (ch. 6).

    Each hidden layer: Affine → [BatchNorm] → activation → [Dropout]; then a final Affine.
    ``weight_init_std``: a float std or 'relu'/'he' (N(0, 2/n_in)) or
    'sigmoid'/'xavier' (N(0, 1/n_in)). ``weight_decay_lambda`` adds the book's
    0.5 · λ · Σ W² on every weight matrix. ``dropout_ration`` is the book's spelling.
    """

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False, *, rng: Any = None,
                 dtype: Any = np.float32, convention: str = "groundup") -> None:
        super().__init__((input_size,), **_common(rng, dtype, convention))
        self._remember(input_size=input_size, hidden_size_list=list(hidden_size_list),
                       output_size=output_size, activation=activation,
                       weight_init_std=weight_init_std, weight_decay_lambda=weight_decay_lambda,
                       use_dropout=use_dropout, dropout_ration=dropout_ration,
                       use_batchnorm=use_batchnorm)
        check_number(type(self).__name__, "weight_decay_lambda", weight_decay_lambda, low=0)
        if isinstance(activation, str):
            check_choice(type(self).__name__, "activation", activation.lower(), ACTIVATIONS)
        initializers.resolve(weight_init_std)
        reg = regularizers.BookL2(weight_decay_lambda) if weight_decay_lambda else None
        for units in hidden_size_list:
            self.add("dense", units=units, init=weight_init_std, regularizer=reg)
            if use_batchnorm:
                self.add("batchnorm")
            self.add(activation.lower())
            if use_dropout:
                self.add("dropout", dropout_ratio=dropout_ration)
        self.add("dense", units=output_size, init=weight_init_std, regularizer=reg)


class MultiLayerNet(MultiLayerNetExtend):
    """The book's plain fully connected net (ch. 6): MultiLayerNetExtend without BN/dropout."""

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, *, rng: Any = None, dtype: Any = np.float32,
                 convention: str = "groundup") -> None:
        super().__init__(input_size, hidden_size_list, output_size, activation, weight_init_std,
                         weight_decay_lambda, rng=rng, dtype=dtype, convention=convention)
        self._args = {k: v for k, v in self._args.items()
                      if k not in ("use_dropout", "dropout_ration", "use_batchnorm")}


def _conv_param(param: dict[str, Any], owner: str) -> dict[str, int]:
    if not isinstance(param, dict):
        raise type_error(owner, "conv_param", "a dict", param)
    unknown = set(param) - {"filter_num", "filter_size", "pad", "stride"}
    if unknown:
        raise value_error(owner, "conv_param keys", "filter_num, filter_size, pad, stride",
                          sorted(unknown))
    return {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **param}


class SimpleConvNet(_BookNet):
    """The book's ch. 7 net: Conv → ReLU → MaxPool(2, stride 2) → Affine → ReLU → Affine.

    Params W1/b1 (conv), W2/b2, W3/b3 (affine), all drawn N(0, weight_init_std²) (or from
    a named initializer).
    """

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param: dict[str, int] | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: Any = 0.01, *, rng: Any = None,
                 dtype: Any = np.float32, convention: str = "groundup") -> None:
        super().__init__(tuple(input_dim), **_common(rng, dtype, convention))
        cp = _conv_param(conv_param or {}, "SimpleConvNet")
        self._remember(input_dim=list(input_dim), conv_param=cp, hidden_size=hidden_size,
                       output_size=output_size, weight_init_std=weight_init_std)
        std = weight_init_std
        self.add("conv", filters=cp["filter_num"], kernel_size=cp["filter_size"],
                 stride=cp["stride"], pad=cp["pad"], init=std)
        self.add("relu").add("pool", size=2, stride=2)
        self.add("dense", units=hidden_size, init=std).add("relu")
        self.add("dense", units=output_size, init=std)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        return super().accuracy(x, t, batch_size)


class DeepConvNet(_BookNet):
    """The book's ch. 8 deep net (≈99 % on MNIST):

    conv-relu-conv-relu-pool ×3 → affine-relu-dropout → affine-dropout, He initialization,
    3×3 filters with pad 1, dropout 0.5.
    """

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param_1: dict | None = None, conv_param_2: dict | None = None,
                 conv_param_3: dict | None = None, conv_param_4: dict | None = None,
                 conv_param_5: dict | None = None, conv_param_6: dict | None = None,
                 hidden_size: int = 50, output_size: int = 10, *, rng: Any = None,
                 dtype: Any = np.float32, convention: str = "groundup") -> None:
        super().__init__(tuple(input_dim), **_common(rng, dtype, convention))
        defaults = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]
        given = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                 conv_param_6]
        params = [_conv_param({"filter_num": fn, "filter_size": 3, "pad": pad, **(g or {})},
                              "DeepConvNet") for (fn, pad), g in zip(defaults, given, strict=True)]
        self._remember(input_dim=list(input_dim), **{f"conv_param_{i + 1}": p
                                                     for i, p in enumerate(params)},
                       hidden_size=hidden_size, output_size=output_size)
        for i, cp in enumerate(params):
            self.add("conv", filters=cp["filter_num"], kernel_size=cp["filter_size"],
                     stride=cp["stride"], pad=cp["pad"], init="he_normal").add("relu")
            if i % 2 == 1:
                self.add("pool", size=2, stride=2)
        self.add("dense", units=hidden_size, init="he_normal").add("relu")
        self.add("dropout", dropout_ratio=0.5)
        self.add("dense", units=output_size, init="he_normal").add("dropout", dropout_ratio=0.5)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        return super().accuracy(x, t, batch_size)


MODEL_CLASSES: dict[str, type[Sequential]] = {
    cls.__name__: cls for cls in (Sequential, TwoLayerNet, MultiLayerNet, MultiLayerNetExtend,
                                  SimpleConvNet, DeepConvNet)
}


def from_config(config: dict[str, Any], rng: Any = None) -> Sequential:
    """Rebuild a model (fresh weights) from ``get_config()`` output."""
    if not isinstance(config, dict) or "class" not in config or "args" not in config:
        raise value_error("models.from_config", "config", "a dict with 'class' and 'args'",
                          config)
    cls = MODEL_CLASSES[check_choice("models.from_config", "class", config["class"],
                                     MODEL_CLASSES)]
    return cls(**config["args"], rng=rng)
