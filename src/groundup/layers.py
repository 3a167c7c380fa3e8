"""Layers with forward and backward passes (book ch. 5-6).

Contract (DESIGN §3): ``forward(x, train_flg=True)`` and ``backward(dout)``; a layer's
trainable arrays are attributes named in ``param_names`` (``W``, ``b``, ``gamma``, ...)
and backward leaves their gradients on the layer as ``dW``, ``db``, ``dgamma``, ...
Models hold references to the same arrays, so they are updated in place, never rebound.
Loss layers take ``forward(x, t)`` and ``backward(dout=1)``.

Randomness comes from an ``rng`` with the ``numpy.random.Generator`` interface; the book
surface passes an adapter over the global ``np.random``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from groundup._checks import (
    check_array,
    check_choice,
    check_labels,
    check_number,
    type_error,
    value_error,
)
from groundup.fast import threads as _threads
from groundup.functions import sigmoid

# Below this many multiply-adds per thread, a product is not split over threads.
_MIN_SPLIT_MACS = 1 << 20


class Layer:
    """Base class: parameter bookkeeping shared by every layer."""

    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.param_names}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, "d" + name) for name in self.param_names}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Arrays that are not trained but belong to the model (BN running statistics)."""
        return {name: getattr(self, name) for name in self.state_names}

    def get_config(self) -> dict[str, Any]:
        """JSON-able settings that rebuild the layer (arrays excluded)."""
        return {}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Affine(Layer):
    """Fully connected layer: out = x · W + b.

    Inputs with more than two axes (e.g. conv feature maps) are flattened to (N, -1)
    and the input gradient is given back in the original shape.

    Shapes: x (N, ...) with prod(...) = D; W (D, M); b (M,); out (N, M).
    """

    param_names = ("W", "b")

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        check_array("Affine", "W", W, ndim=2)
        check_array("Affine", "b", b, ndim=1)
        if b.shape[0] != W.shape[1]:
            raise value_error("Affine", "b.shape", f"({W.shape[1]},) to match W.shape[1]",
                              f"={b.shape}")
        self.W = W
        self.b = b
        self.x: np.ndarray | None = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self.needs_input_grad = True
        # Set by a model that consumes dx at once: backward may then write dx into the same
        # buffer every step instead of faulting in fresh pages.
        self.reuse_buffers = False
        self._dx: np.ndarray | None = None

    def _split_threads(self, rows: int) -> int:
        """Threads to split this layer's products over (inside ``own_threads()`` only)."""
        threads = _threads.splitting()
        if threads > 1 and rows * self.W.size >= threads * _MIN_SPLIT_MACS:
            return min(threads, rows)
        return 1

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # -1 fails on an empty batch
        if x.shape[1] != self.W.shape[0]:
            raise value_error("Affine", "x.shape", f"(N, {self.W.shape[0]}) after flattening",
                              f"={self.original_x_shape}")
        self.x = x
        threads = self._split_threads(x.shape[0])
        if threads == 1:
            out = x @ self.W  # (N, M)
            out += self.b
            return out
        out = np.empty((x.shape[0], self.W.shape[1]), dtype=np.result_type(x, self.W))

        def rows(lo: int, hi: int) -> None:  # each row is computed as in the one-part product
            np.matmul(x[lo:hi], self.W, out=out[lo:hi])
            out[lo:hi] += self.b

        _threads.run(rows, _threads.bounds(x.shape[0], threads))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.x is None:
            raise RuntimeError("Affine: backward called before forward.")
        x, W = self.x, self.W
        self.db = np.add.reduce(dout, axis=0)
        threads = self._split_threads(x.shape[0])
        if threads == 1:
            self.dW = x.T @ dout  # (D, M)
            if not self.needs_input_grad:
                return None
            return (dout @ W.T).reshape(self.original_x_shape)
        dtype = np.result_type(x, dout)
        self.dW = np.empty(W.shape, dtype=dtype)
        dx = None
        if self.needs_input_grad:
            dx = self._dx
            if not (self.reuse_buffers and dx is not None and dx.shape == x.shape
                    and dx.dtype == np.result_type(dout, W)):
                dx = np.empty(x.shape, dtype=np.result_type(dout, W))
                self._dx = dx if self.reuse_buffers else None
        def part(lo: int, hi: int) -> None:  # input features lo..hi-1 of dW and dx
            np.matmul(x[:, lo:hi].T, dout, out=self.dW[lo:hi])
            if dx is not None:
                np.matmul(dout, W[lo:hi].T, out=dx[:, lo:hi])

        _threads.run(part, _threads.bounds(W.shape[0], threads))
        return None if dx is None else dx.reshape(self.original_x_shape)


class Relu(Layer):
    """out = max(0, x); dx = dout where x > 0 else 0.

    Unlike the book's ``Relu.backward``, which zeroes ``dout`` in place (corrupting the
    caller's array), this returns a new array and leaves ``dout`` untouched.
    """

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        # evaluation keeps no mask (and a backward after it fails instead of using a stale one)
        self.mask = x > 0 if train_flg else None
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Relu: backward called before forward.")
        # dx in the memory order of x, so the layer below gets its gradient in the layout of
        # its own output and needs no reordering copy
        dx = np.empty_like(self.mask, dtype=np.result_type(dout, self.mask))
        return np.multiply(dout, self.mask, out=dx)


class LeakyRelu(Layer):
    """out = x if x > 0 else alpha · x."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_number("LeakyRelu", "alpha", alpha, low=0)
        self.slope: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.slope = np.where(x > 0, 1, self.alpha).astype(x.dtype)
        return x * self.slope

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.slope

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)); dx = dout · out · (1 - out)."""

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out) * self.out


class Tanh(Layer):
    """out = tanh(x); dx = dout · (1 - out²)."""

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out * self.out)


class SoftmaxWithLoss(Layer):
    """Softmax followed by cross-entropy, averaged over the batch.

    L = -(1/N) Σ_n log softmax(x)[n, t_n]; dx = (softmax(x) - onehot(t)) / N.
    ``t`` may be class labels (N,) or one-hot (N, K). The loss is computed from the
    log-softmax, so it is exact (no 1e-7 guard) and consistent with the gradient.

    Shapes: x (N, K); t (N,) or (N, K); loss scalar; dx (N, K).
    """

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self.loss: float | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        check_array("SoftmaxWithLoss", "x", x, ndim=2, finite=False)
        labels = check_labels("SoftmaxWithLoss", t, x.shape[0], x.shape[1])
        n, k = x.shape
        # column-major, the reductions over the K classes run over contiguous columns
        # (several times faster than over rows of K = 10)
        x = np.asfortranarray(x)
        z = x - np.maximum.reduce(x, axis=1, keepdims=True)
        e = np.exp(z)
        total = np.add.reduce(e, axis=1, keepdims=True)
        # -log softmax(x)[t] = log Σ exp(z) - z[t], exact and consistent with the gradient
        self.t = labels
        self._picked = labels * n + np.arange(n)  # flat column-major index of x[i, t_i]
        self.loss = float(np.add.reduce(np.log(total[:, 0]) - z.ravel("F")[self._picked]) / n)
        e /= total
        self.y = e
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss: backward called before forward.")
        n = self.y.shape[0]
        dx = self.y * self.y.dtype.type(dout / n)  # keeps the column-major order
        dx.ravel("F")[self._picked] -= dx.dtype.type(dout / n)
        return dx


class MSELoss(Layer):
    """Mean over the batch of the book's per-sample 0.5 · Σ_k (x_k - t_k)².

    L = (1/N) Σ_n 0.5 · Σ_k (x_nk - t_nk)²; dx = (x - t) / N.

    Shapes: x (N, K); t (N, K), or class labels (N,) which are one-hot encoded.
    """

    def __init__(self) -> None:
        self.diff: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        check_array("MSELoss", "x", x, ndim=2, finite=False)
        if t.ndim == 1:
            labels = check_labels("MSELoss", t, x.shape[0], x.shape[1])
            t = np.zeros_like(x)
            t[np.arange(x.shape[0]), labels] = 1
        elif t.shape != x.shape:
            raise value_error("MSELoss", "t.shape", f"{x.shape} (same as x)", f"={t.shape}")
        self.diff = x - t
        return float(0.5 * np.sum(self.diff * self.diff) / x.shape[0])

    def backward(self, dout: float = 1) -> np.ndarray:
        if self.diff is None:
            raise RuntimeError("MSELoss: backward called before forward.")
        return self.diff * self.diff.dtype.type(dout / self.diff.shape[0])


class Dropout(Layer):
    """Randomly zero a fraction ``dropout_ratio`` of the activations during training.

    Book convention (``inverted=False``): train out = x · mask, test out = x · (1 - p).
    Inverted (``inverted=True``, PyTorch/Keras): train out = x · mask / (1 - p), test out = x.
    Both give the same expected activation at train and test time. The mask is drawn as
    float32 from ``rng``; ``hold_mask`` reuses the last mask (for gradient checks).
    """

    def __init__(self, dropout_ratio: float = 0.5, *, inverted: bool = False,
                 rng: Any = None) -> None:
        self.dropout_ratio = check_number("Dropout", "dropout_ratio", dropout_ratio,
                                          low=0, high=1, high_open=True)
        self.inverted = bool(inverted)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.mask: np.ndarray | None = None
        self.hold_mask = False

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        p = self.dropout_ratio
        if not train_flg:
            return x if self.inverted else x * x.dtype.type(1 - p)
        if not (self.hold_mask and self.mask is not None and self.mask.shape == x.shape):
            keep = self.rng.random(x.shape, dtype=np.float32) >= np.float32(p)
            scale = x.dtype.type(1 / (1 - p) if self.inverted else 1)
            self.mask = np.multiply(keep, scale, dtype=x.dtype)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Dropout: backward called before a training forward.")
        return dout * self.mask

    def get_config(self) -> dict[str, Any]:
        return {"dropout_ratio": self.dropout_ratio, "inverted": self.inverted}


class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015).

    Train: μ = mean(x), σ² = var(x) over the batch, x̂ = (x - μ) / √(σ² + eps),
    out = γ · x̂ + β; running ← momentum · running + (1 - momentum) · batch statistic.
    Test: x̂ uses the running statistics. ``momentum`` is the book's and Keras' (the share
    kept); PyTorch's ``momentum=0.1`` is ``momentum=0.9`` here. With
    ``unbiased_running_var`` the running variance takes the N/(N-1)-corrected batch
    variance, as PyTorch does.

    On 4-D input (N, C, H, W) the statistics are per channel, over N, H and W. (The book
    reshapes to (N, C·H·W) and normalizes each pixel separately, which is not batch norm
    for convolutions; fixed here.)

    Shapes: x (N, D) with γ, β (D,), or x (N, C, H, W) with γ, β (C,).
    """

    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9,
                 running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None,
                 *, eps: float = 1e-6, unbiased_running_var: bool = False) -> None:
        check_array("BatchNormalization", "gamma", gamma, ndim=1)
        check_array("BatchNormalization", "beta", beta, ndim=1)
        self.momentum = check_number("BatchNormalization", "momentum", momentum, low=0, high=1)
        self.eps = check_number("BatchNormalization", "eps", eps, low=0, low_open=True)
        self.unbiased_running_var = bool(unbiased_running_var)
        self.gamma = gamma
        self.beta = beta
        dim = gamma.shape[0]
        self.running_mean = (np.zeros(dim, dtype=gamma.dtype) if running_mean is None
                             else running_mean)
        self.running_var = np.ones(dim, dtype=gamma.dtype) if running_var is None else running_var
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None
        self.xn: np.ndarray | None = None
        self.inv_std: np.ndarray | None = None
        self.input_shape: tuple[int, ...] | None = None

    def _to_2d(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 4:
            return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])  # (N·H·W, C)
        if x.ndim != 2:
            raise value_error("BatchNormalization", "x.ndim", "2 (N, D) or 4 (N, C, H, W)",
                              f"={x.ndim}")
        return x

    def _from_2d(self, y: np.ndarray) -> np.ndarray:
        if len(self.input_shape) == 4:
            n, c, h, w = self.input_shape
            return y.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return y

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        x2 = self._to_2d(x)
        if x2.shape[1] != self.gamma.shape[0]:
            raise value_error("BatchNormalization", "x.shape",
                              f"{self.gamma.shape[0]} features/channels", f"={x.shape}")
        dtype = x2.dtype.type
        if train_flg:
            m = x2.shape[0]
            if m == 0:
                raise value_error("BatchNormalization", "batch size", "at least 1 in training "
                                  "(batch statistics of no samples are undefined)", "=0")
            mu = np.add.reduce(x2, axis=0) / dtype(m)
            xc = x2 - mu
            var = np.add.reduce(np.square(xc), axis=0) / dtype(m)
            self.inv_std = 1 / np.sqrt(var + dtype(self.eps))
            xc *= self.inv_std
            self.xn = xc
            batch_var = var * dtype(m / (m - 1)) if self.unbiased_running_var and m > 1 else var
            keep = self.running_mean.dtype.type(self.momentum)
            self.running_mean *= keep
            self.running_mean += (1 - keep) * mu
            self.running_var *= keep
            self.running_var += (1 - keep) * batch_var
            xn = self.xn
        else:
            # γ · (x - μ) / √(σ² + eps) + β as one scale and one shift per feature
            scale = self.gamma / np.sqrt(self.running_var + dtype(self.eps))
            out = x2 * scale
            out += self.beta - self.running_mean * scale
            return self._from_2d(out)
        return self._from_2d(self.gamma * xn + self.beta)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.xn is None:
            raise RuntimeError("BatchNormalization: backward called before a training forward.")
        d2 = self._to_2d(dout)
        xn = self.xn
        m = xn.dtype.type(xn.shape[0])
        self.dbeta = np.add.reduce(d2, axis=0)
        self.dgamma = np.add.reduce(d2 * xn, axis=0)
        # dx = (dxn - mean(dxn) - xn · mean(dxn · xn)) / std with dxn = γ · dout, the
        # batch-coupled gradient; mean(dxn) = γ · dbeta / m and mean(dxn · xn) = γ · dgamma / m
        scale = self.gamma * self.inv_std
        dx = d2 * scale
        dx -= (self.dbeta * scale) / m
        dx -= xn * ((self.dgamma * scale) / m)
        return self._from_2d(dx)

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps,
                "unbiased_running_var": self.unbiased_running_var}


class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W); backward restores the shape."""

    def __init__(self) -> None:
        self.input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self.input_shape)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh, "leaky_relu": LeakyRelu,
}


def activation(name: str) -> Layer:
    """Build an activation layer by name ('relu', 'sigmoid', 'tanh', 'leaky_relu')."""
    if not isinstance(name, str):
        raise type_error("activation", "name", "a str", name)
    return ACTIVATIONS[check_choice("activation", "name", name.lower(), ACTIVATIONS)]()
