"""Weight regularizers: a penalty added to the loss and its gradient added to dW.

| name        | penalty             | gradient         |
|-------------|---------------------|------------------|
| BookL2(λ)   | 0.5 · λ · Σ W²      | λ · W            | the book's ``weight_decay_lambda``
| L2(c)       | c · Σ W²            | 2 · c · W        | Keras ``regularizers.l2``
| L1(c)       | c · Σ |W|           | c · sign(W)      | Keras ``regularizers.l1``
| L1L2(l1,l2) | l1 · Σ|W| + l2 · ΣW² | l1·sign(W) + 2·l2·W |

Models apply them to weights (``W``) only unless a layer is given a bias regularizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, type_error


class Regularizer:
    """Base: ``penalty(W) -> float`` and ``add_grad(W, dW)`` (adds to dW in place)."""

    def penalty(self, W: np.ndarray) -> float:
        raise NotImplementedError

    def add_grad(self, W: np.ndarray, dW: np.ndarray) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": type(self).__name__, **vars(self)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = None


class BookL2(Regularizer):
    """Coupled L2 weight decay of the book: 0.5 · λ · Σ W², gradient λ · W."""

    def __init__(self, weight_decay_lambda: float) -> None:
        self.weight_decay_lambda = float(check_number("BookL2", "weight_decay_lambda",
                                                      weight_decay_lambda, low=0))

    def penalty(self, W: np.ndarray) -> float:
        return 0.5 * self.weight_decay_lambda * float(np.sum(W * W))

    def add_grad(self, W: np.ndarray, dW: np.ndarray) -> None:
        dW += W.dtype.type(self.weight_decay_lambda) * W


class L2(Regularizer):
    """Keras L2: c · Σ W², gradient 2 · c · W."""

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = float(check_number("L2", "l2", l2, low=0))

    def penalty(self, W: np.ndarray) -> float:
        return self.l2 * float(np.sum(W * W))

    def add_grad(self, W: np.ndarray, dW: np.ndarray) -> None:
        dW += W.dtype.type(2 * self.l2) * W


class L1(Regularizer):
    """Keras L1: c · Σ |W|, (sub)gradient c · sign(W)."""

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = float(check_number("L1", "l1", l1, low=0))

    def penalty(self, W: np.ndarray) -> float:
        return self.l1 * float(np.sum(np.abs(W)))

    def add_grad(self, W: np.ndarray, dW: np.ndarray) -> None:
        dW += W.dtype.type(self.l1) * np.sign(W)


class L1L2(Regularizer):
    """Keras L1L2: l1 · Σ|W| + l2 · Σ W²."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = float(check_number("L1L2", "l1", l1, low=0))
        self.l2 = float(check_number("L1L2", "l2", l2, low=0))

    def penalty(self, W: np.ndarray) -> float:
        return self.l1 * float(np.sum(np.abs(W))) + self.l2 * float(np.sum(W * W))

    def add_grad(self, W: np.ndarray, dW: np.ndarray) -> None:
        dW += W.dtype.type(self.l1) * np.sign(W) + W.dtype.type(2 * self.l2) * W


REGISTRY: dict[str, type[Regularizer]] = {
    "bookl2": BookL2, "l2": L2, "l1": L1, "l1l2": L1L2,
}


def get(spec: Any) -> Regularizer | None:
    """A regularizer from an instance, ``None``, or a config dict ``{"name": ..., ...}``."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, dict):
        args = dict(spec)
        name = str(args.pop("name", "")).lower()
        return REGISTRY[check_choice("regularizers.get", "name", name, REGISTRY)](**args)
    if isinstance(spec, str):
        key = spec.lower()
        return REGISTRY[check_choice("regularizers.get", "name", key, REGISTRY)]()
    raise type_error("regularizers.get", "spec", "a Regularizer, a name or a config dict", spec)
