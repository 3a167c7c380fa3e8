"""Activation and loss functions on plain arrays (book ch. 3-4).

All functions keep the input dtype: float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np


def identity_function(x: np.ndarray) -> np.ndarray:
    """y = x."""
    return x


def step_function(x: np.ndarray) -> np.ndarray:
    """y = 1 if x > 0 else 0, as int64 like the book (``np.array(x > 0, dtype=int)``)."""
    return np.asarray(np.asarray(x) > 0, dtype=np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """y = 1 / (1 + exp(-x)), overflow-safe.

    ``exp`` is only ever taken of ``-|x|`` so it never overflows; for x < 0 the
    algebraically equal form exp(x) / (1 + exp(x)) is used.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """dy/dx = sigmoid(x) · (1 - sigmoid(x))."""
    s = sigmoid(x)
    return (1 - s) * s


def tanh(x: np.ndarray) -> np.ndarray:
    """y = tanh(x)."""
    return np.tanh(x)


def relu(x: np.ndarray) -> np.ndarray:
    """y = max(0, x)."""
    return np.maximum(x, 0)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """dy/dx = 1 where x > 0 else 0 (0 at the kink, like the book)."""
    x = np.asarray(x)
    return (x > 0).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """y = x if x > 0 else alpha · x."""
    x = np.asarray(x)
    return np.where(x > 0, x, x * x.dtype.type(alpha) if x.dtype.kind == "f" else alpha * x)


def softmax(x: np.ndarray) -> np.ndarray:
    """y_i = exp(x_i - max x) / Σ_j exp(x_j - max x) over the last axis.

    Works for a 1-D vector or any batch shape (..., K); subtracting the max keeps
    ``exp`` from overflowing without changing the result.
    """
    x = np.asarray(x)
    z = x - x.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax(x) over the last axis, computed without forming softmax first."""
    x = np.asarray(x)
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def mean_squared_error(y: np.ndarray, t: np.ndarray) -> float:
    """E = 0.5 · Σ_k (y_k - t_k)² for one sample (the book's sum-squared error).

    For a batch (N, K) the per-sample errors are averaged over N, like
    ``cross_entropy_error``.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    if y.ndim <= 1:
        return 0.5 * float(np.sum((y - t) ** 2))
    return 0.5 * float(np.sum((y - t) ** 2)) / y.shape[0]


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """E = -(1/N) Σ_n log(y[n, t_n] + 1e-7), with t one-hot or class labels.

    ``y`` are probabilities, 1-D (one sample) or (N, K). The 1e-7 is the book's guard
    against log(0).
    """
    y = np.asarray(y)
    t = np.asarray(t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.size == y.size else t.reshape(1)
    if t.size == y.size:
        t = t.argmax(axis=1)
    n = y.shape[0]
    return float(-np.sum(np.log(y[np.arange(n), t.astype(np.intp)] + 1e-7)) / n)
