"""Weight initializers.

Each initializer maps ``(shape, rng, dtype)`` to a new array. Fans: for an Affine weight
(D, M) fan_in = D, fan_out = M; for a convolution weight (FN, C, FH, FW)
fan_in = C·FH·FW and fan_out = FN·FH·FW.

| name            | distribution                                  |
|-----------------|-----------------------------------------------|
| a float s       | N(0, s²) — the book's ``weight_init_std=0.01`` |
| glorot_normal   | N(0, 2 / (fan_in + fan_out))                  |
| glorot_uniform  | U(±√(6 / (fan_in + fan_out)))  (Keras default, seed 002's "xavier") |
| he_normal       | N(0, 2 / fan_in)   (PyTorch kaiming_normal_)   |
| he_uniform      | U(±√(6 / fan_in))                             |
| lecun_normal    | N(0, 1 / fan_in)   (the book's "xavier")        |
| lecun_uniform   | U(±√(3 / fan_in))                             |
| zeros           | 0                                             |

The book's names keep the book's meaning: ``'relu'``/``'he'`` = he_normal and
``'sigmoid'``/``'xavier'`` = lecun_normal, i.e. N(0, 1/n_in).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, type_error

BOOK_ALIASES = {"relu": "he_normal", "he": "he_normal",
                "sigmoid": "lecun_normal", "xavier": "lecun_normal"}

NAMES = ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
         "lecun_uniform", "zeros")


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of an Affine (D, M) or convolution (FN, C, FH, FW) weight."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        receptive = shape[2] * shape[3]
        return shape[1] * receptive, shape[0] * receptive
    size = int(np.prod(shape))
    return size, size


def std_of(init: str | float, shape: tuple[int, ...]) -> float:
    """The standard deviation a normal initializer uses (for display and the book's nets)."""
    name = resolve(init)
    if isinstance(name, float):
        return name
    fan_in, fan_out = fans(shape)
    return {
        "glorot_normal": np.sqrt(2 / (fan_in + fan_out)),
        "glorot_uniform": np.sqrt(2 / (fan_in + fan_out)),
        "he_normal": np.sqrt(2 / fan_in), "he_uniform": np.sqrt(2 / fan_in),
        "lecun_normal": np.sqrt(1 / fan_in), "lecun_uniform": np.sqrt(1 / fan_in),
        "zeros": 0.0,
    }[name]


def resolve(init: Any) -> str | float:
    """Canonical initializer: a float std, or one of ``NAMES`` (book aliases resolved)."""
    if isinstance(init, (int, float, np.floating)) and not isinstance(init, bool):
        return float(check_number("initializer", "std", init, low=0))
    if not isinstance(init, str):
        raise type_error("initializer", "init", "a float std or a name", init)
    key = init.lower()
    key = BOOK_ALIASES.get(key, key)
    return check_choice("initializer", "init", key, (*NAMES, *BOOK_ALIASES))


def initialize(init: str | float, shape: tuple[int, ...], rng: Any,
               dtype: Any = np.float32) -> np.ndarray:
    """A new array of ``shape`` drawn from the initializer ``init`` with ``rng``.

    ``rng`` has the ``numpy.random.Generator`` interface (``standard_normal``, ``uniform``).
    """
    name = resolve(init)
    shape = tuple(int(s) for s in shape)
    if name == "zeros":
        return np.zeros(shape, dtype=dtype)
    fan_in, fan_out = fans(shape)
    if isinstance(name, float) or name.endswith("normal"):
        std = std_of(name, shape)
        out = rng.standard_normal(shape)
        return (out * std).astype(dtype, copy=False)
    limit = {"glorot_uniform": np.sqrt(6 / (fan_in + fan_out)),
             "he_uniform": np.sqrt(6 / fan_in),
             "lecun_uniform": np.sqrt(3 / fan_in)}[name]
    return rng.uniform(-limit, limit, shape).astype(dtype, copy=False)
