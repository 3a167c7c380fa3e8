"""Random number generators: one ``numpy.random.Generator`` per run, or the book's global one.

groundup's own API draws every random number (initial weights, dropout masks, shuffling)
from a ``Generator`` made from the run's seed, so the same seed gives the same run. The book
seeds the global ``np.random`` instead; :class:`GlobalRNG` lets the book surface keep that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup._checks import type_error


class GlobalRNG:
    """The ``Generator`` methods layers use, drawn from the global ``np.random`` state.

    The book's code seeds with ``np.random.seed``; its surface passes this adapter so that
    seeding keeps working there, while groundup's own API uses a ``Generator`` per run.
    """

    def standard_normal(self, size: Any) -> np.ndarray:
        return np.random.standard_normal(size)  # noqa: NPY002 - the book's global RNG

    def uniform(self, low: float, high: float, size: Any) -> np.ndarray:
        return np.random.uniform(low, high, size)  # noqa: NPY002

    def random(self, size: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.random.random_sample(size).astype(dtype, copy=False)  # noqa: NPY002

    def choice(self, a: Any, size: Any = None, replace: bool = True) -> np.ndarray:
        return np.random.choice(a, size, replace=replace)  # noqa: NPY002

    def permutation(self, x: Any) -> np.ndarray:
        return np.random.permutation(x)  # noqa: NPY002


def make_rng(rng: Any) -> Any:
    """A Generator from ``None`` (fresh entropy), an int seed, a Generator, or GlobalRNG."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, (np.random.Generator, GlobalRNG)):
        return rng
    raise type_error("model", "rng", "None, an int seed or a numpy.random.Generator", rng)
