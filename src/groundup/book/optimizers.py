"""The book's optimizers (``common/optimizer.py`` of "Deep Learning from Scratch").

Same names, signatures, defaults and formulas as the book, so its figures and numbers can be
reproduced; the differences from :mod:`groundup.optimizers` (torch's formulas) are listed in
``docs/optimizers.md``. Each rule is a ``step`` over one parameter written as the book
writes it, in the book's order, so float64 results are bit-for-bit the book's; the base
class adds ``state_dict``/``load_state_dict``. Unlike :mod:`groundup.optimizers`, a gradient
of another float dtype than its parameter is accepted, as the book's code does.

>>> import numpy as np
>>> params = {"x": np.array(-7.0), "y": np.array(2.0)}
>>> opt = SGD(lr=0.95)
>>> opt.update(params, {"x": params["x"] / 10.0, "y": 2.0 * params["y"]})
>>> float(params["x"]), float(params["y"])
(-6.335, -1.7999999999999998)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, suggest, type_error
from groundup._optimizer import Optimizer, State

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get"]

# The book adds 1e-7 to every denominator to avoid a division by zero.
_BOOK_EPS = 1e-7


class _BookOptimizer(Optimizer):
    _strict_dtypes = False
    config_keys = ("lr",)

    def __init__(self, lr: float) -> None:
        super().__init__(lr)

    def update(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """Update ``params`` in place; Python-float entries (the book's 2-D demo) are rebound."""
        boxed = [key for key, p in params.items() if not isinstance(p, np.ndarray)]
        if not boxed:
            super().update(params, grads)
            return
        arrays = {key: np.array(p, dtype=np.float64) if key in boxed else p
                  for key, p in params.items()}
        super().update(arrays, grads)
        for key in boxed:
            params[key] = float(arrays[key])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["name"] = "book." + config["name"]
        return config


class SGD(_BookOptimizer):
    """``W = W - lr * dW``. Default lr=0.01."""

    name = "sgd"

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        p -= lr * g


class Momentum(_BookOptimizer):
    """``v = momentum * v - lr * dW;  W = W + v``. Defaults lr=0.01, momentum=0.9."""

    name = "momentum"
    config_keys = ("lr", "momentum")

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = float(check_number(type(self).__name__, "momentum", momentum, low=0.0))
        self._set_slots("v")

    @property
    def v(self) -> dict[str, np.ndarray] | None:
        """The book's velocity dict (``None`` before the first update)."""
        return self.state["v"] or None

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        v = state["v"]
        v[...] = self.momentum * v - lr * g
        p += v


class Nesterov(Momentum):
    """The book's Nesterov form (Sutskever et al.'s rewriting in terms of ``v``).

    ``v = momentum * v - lr * dW;  W = W + momentum² * v - (1 + momentum) * lr * dW``.
    Defaults lr=0.01, momentum=0.9.
    """

    name = "nesterov"

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        momentum, v = self.momentum, state["v"]
        v[...] = momentum * v - lr * g
        p += momentum * momentum * v
        p -= (1 + momentum) * lr * g


class AdaGrad(_BookOptimizer):
    """``h = h + dW²;  W = W - lr * dW / (sqrt(h) + 1e-7)``. Default lr=0.01."""

    name = "adagrad"

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)
        self._set_slots("h")

    @property
    def h(self) -> dict[str, np.ndarray] | None:
        """The book's accumulated squared gradients (``None`` before the first update)."""
        return self.state["h"] or None

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        h = state["h"]
        h += g * g
        p -= lr * g / (np.sqrt(h) + _BOOK_EPS)


class RMSprop(AdaGrad):
    """``h = decay_rate * h + (1 - decay_rate) * dW²;  W = W - lr * dW / (sqrt(h) + 1e-7)``.

    Defaults lr=0.01, decay_rate=0.99.
    """

    name = "rmsprop"
    config_keys = ("lr", "decay_rate")

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = float(check_number(type(self).__name__, "decay_rate", decay_rate,
                                             low=0.0, high=1.0, high_open=True))

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        h = state["h"]
        h *= self.decay_rate
        h += (1 - self.decay_rate) * g * g
        p -= lr * g / (np.sqrt(h) + _BOOK_EPS)


class Adam(_BookOptimizer):
    """The book's Adam: bias correction folded into the step, eps 1e-7 added to ``sqrt(v)``.

    ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);  m = m + (1 - beta1) * (dW - m);
    v = v + (1 - beta2) * (dW² - v);  W = W - lr_t * m / (sqrt(v) + 1e-7)``.
    Defaults lr=0.001, beta1=0.9, beta2=0.999. (torch's Adam adds eps to ``sqrt(v_hat)``
    instead, which is ``eps * sqrt(1 - beta2^t)`` here: the two differ in the first steps.)
    """

    name = "adam"
    config_keys = ("lr", "beta1", "beta2")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        owner = type(self).__name__
        self.beta1 = float(check_number(owner, "beta1", beta1, low=0.0, high=1.0,
                                        high_open=True))
        self.beta2 = float(check_number(owner, "beta2", beta2, low=0.0, high=1.0,
                                        high_open=True))
        self._set_slots("m", "v")

    @property
    def iter(self) -> int:
        """The book's update counter."""
        return self.iterations

    @property
    def m(self) -> dict[str, np.ndarray] | None:
        """First moments by parameter name (``None`` before the first update)."""
        return self.state["m"] or None

    @property
    def v(self) -> dict[str, np.ndarray] | None:
        """Second moments by parameter name (``None`` before the first update)."""
        return self.state["v"] or None

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        beta1, beta2, t = self.beta1, self.beta2, self.iterations
        m, v = state["m"], state["v"]
        # math.sqrt keeps lr_t a Python float, so float32 arrays stay float32.
        lr_t = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        p -= lr_t * m / (np.sqrt(v) + _BOOK_EPS)


_REGISTRY = {cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}


def names() -> list[str]:
    """The names :func:`get` accepts, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: Any) -> Optimizer:
    """The book Trainer's lookup: ``get("adam", lr=0.001)`` (case-insensitive).

    The book's Trainer spells RMSprop ``'rmsprpo'``; that spelling is accepted too.
    """
    if not isinstance(name, str):
        raise type_error("book.optimizers.get", "name", "a str", name, suggest("", _REGISTRY))
    key = name.lower()
    key = "rmsprop" if key == "rmsprpo" else key
    key = check_choice("book.optimizers.get", "name", key, _REGISTRY)
    return _REGISTRY[key](**kwargs)
