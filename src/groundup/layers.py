"""Layers with forward and backward passes (book ch. 5-6).

Contract (docs/design.md, "The contract"): ``forward(x, train_flg=True)`` and
``backward(dout)``; a layer's trainable arrays are attributes named in ``param_names``
(``W``, ``b``, ``gamma``, ...) and backward leaves their gradients on the layer as ``dW``,
``db``, ``dgamma``, ...
Models hold references to the same arrays, so they are updated in place, never rebound
(``groundup.fast.compile`` moves them once into one buffer, rebinding layers and model).
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
from groundup.functions import sigmoid


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

    Backward: dx = dout · Wᵀ, dW = xᵀ · dout, db = Σ_n dout. Inputs with more than two
    axes (e.g. conv feature maps) are flattened to (N, -1) and dx is given back in the
    original shape. With ``needs_input_grad = False`` (the first layer of a net, whose dx
    no one uses) dx is skipped and None returned.

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

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # (N, D); -1 fails on an empty batch
        if x.shape[1] != self.W.shape[0]:
            raise value_error("Affine", "x.shape", f"(N, {self.W.shape[0]}) after flattening",
                              f"={self.original_x_shape}")
        self.x = x
        return x @ self.W + self.b  # (N, M)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.x is None:
            raise RuntimeError("Affine: backward called before forward.")
        self.dW = self.x.T @ dout  # (D, M)
        self.db = dout.sum(axis=0)  # (M,)
        if not self.needs_input_grad:
            return None
        dx = dout @ self.W.T  # (N, D)
        return dx.reshape(self.original_x_shape)


class Relu(Layer):
    """out = max(0, x); dx = dout where x > 0 else 0.

    Unlike the book's ``Relu.backward``, which zeroes ``dout`` in place (corrupting the
    caller's array), this returns a new array and leaves ``dout`` untouched.
    """

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Relu: backward called before forward.")
        return dout * self.mask


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

    L = -(1/N) Σ_n log y[n, t_n] with y = softmax(x); dx = (y - onehot(t)) / N.
    ``t`` may be class labels (N,) or one-hot (N, K). The loss is computed from
    log y = z - log Σ_k exp(z_k), z = x - max_k x_k, so it is exact (no 1e-7 guard) and
    consistent with the gradient.

    Shapes: x (N, K); t (N,) or (N, K); loss scalar; dx (N, K).
    """

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self.loss: float | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        check_array("SoftmaxWithLoss", "x", x, ndim=2, finite=False)
        self.t = check_labels("SoftmaxWithLoss", t, x.shape[0], x.shape[1])  # (N,) labels
        n = x.shape[0]
        z = x - x.max(axis=1, keepdims=True)  # exp(z) <= 1: no overflow
        log_y = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, K)
        self.y = np.exp(log_y)
        self.loss = float(-log_y[np.arange(n), self.t].sum() / n)
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss: backward called before forward.")
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1  # y - onehot(t)
        return dx * (dout / n)


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
    """Randomly zero a fraction ``dropout_ratio`` (p) of the activations during training.

    Book convention (``inverted=False``): train out = x · mask, test out = x · (1 - p).
    Inverted (``inverted=True``, PyTorch/Keras): train out = x · mask / (1 - p), test out = x.
    Both give the same expected activation at train and test time. The mask keeps x where
    u >= p, u ~ U[0, 1) drawn as float32 from ``rng``; ``hold_mask`` reuses the last mask
    (for gradient checks).
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
            u = self.rng.random(x.shape, dtype=np.float32)
            scale = x.dtype.type(1 / (1 - p) if self.inverted else 1)
            self.mask = (u >= p) * scale  # 0 or the scale, in x's dtype
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Dropout: backward called before a training forward.")
        return dout * self.mask

    def get_config(self) -> dict[str, Any]:
        return {"dropout_ratio": self.dropout_ratio, "inverted": self.inverted}


class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015).

    Train: μ = Σ x / m and σ² = Σ (x - μ)² / m over the m samples of the batch,
    x̂ = (x - μ) / √(σ² + eps), out = γ · x̂ + β; running ← momentum · running +
    (1 - momentum) · batch statistic. Test: x̂ uses the running statistics.
    Backward: dβ = Σ dout, dγ = Σ dout · x̂, dx = (γ / √(σ² + eps)) · (dout - dβ / m -
    x̂ · dγ / m). ``momentum`` is the book's and Keras' (the share kept); PyTorch's
    ``momentum=0.1`` is ``momentum=0.9`` here. With ``unbiased_running_var`` the running
    variance takes the m/(m-1)-corrected batch variance, as PyTorch does.

    On 4-D input (N, C, H, W) the statistics are per channel, over N, H and W (m = N·H·W).
    (The book reshapes to (N, C·H·W) and normalizes each pixel separately, which is not
    batch norm for convolutions; fixed here.)

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
        self.std: np.ndarray | None = None
        self.input_shape: tuple[int, ...] | None = None

    def to_2d(self, x: np.ndarray) -> np.ndarray:
        """(N, D) as is; (N, C, H, W) as (N·H·W, C), one row per pixel."""
        if x.ndim == 4:
            return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
        if x.ndim != 2:
            raise value_error("BatchNormalization", "x.ndim", "2 (N, D) or 4 (N, C, H, W)",
                              f"={x.ndim}")
        return x

    def from_2d(self, y: np.ndarray) -> np.ndarray:
        """The inverse of ``to_2d`` for the shape of the last forward input."""
        if len(self.input_shape) == 4:
            n, c, h, w = self.input_shape
            return y.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return y

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        x = self.to_2d(x)  # (m, D)
        if x.shape[1] != self.gamma.shape[0]:
            raise value_error("BatchNormalization", "x.shape",
                              f"{self.gamma.shape[0]} features/channels", f"={self.input_shape}")
        if not train_flg:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
            return self.from_2d(self.gamma * xn + self.beta)
        m = x.shape[0]
        if m == 0:
            raise value_error("BatchNormalization", "batch size", "at least 1 in training "
                              "(batch statistics of no samples are undefined)", "=0")
        mu = x.sum(axis=0) / m
        xc = x - mu
        var = (xc * xc).sum(axis=0) / m
        self.std = np.sqrt(var + self.eps)
        self.xn = xc / self.std
        if self.unbiased_running_var and m > 1:
            var = var * (m / (m - 1))
        # in place: the model, the optimizer and saved files hold these very arrays
        self.running_mean *= self.momentum
        self.running_mean += (1 - self.momentum) * mu
        self.running_var *= self.momentum
        self.running_var += (1 - self.momentum) * var
        return self.from_2d(self.gamma * self.xn + self.beta)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.xn is None:
            raise RuntimeError("BatchNormalization: backward called before a training forward.")
        dout = self.to_2d(dout)  # (m, D)
        m = dout.shape[0]
        self.dbeta = dout.sum(axis=0)
        self.dgamma = (dout * self.xn).sum(axis=0)
        dx = (self.gamma / self.std) * (dout - self.dbeta / m - self.xn * (self.dgamma / m))
        return self.from_2d(dx)

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
