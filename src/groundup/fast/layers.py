"""Fast counterparts of the dense layers: each wraps a core layer and computes what it computes.

A counterpart reads the layer's arrays (``W``, ``b``, ``gamma``, ...) at every call and
leaves the parameter gradients on the layer (``dW``, ``db``, ...), as the layer's own
``backward`` would. What each does differently, and how it compares with the reference
(``tests/test_fast_layers.py``):

- :class:`Affine`: inside ``threads.own_threads()`` the large products are split over
  groundup's threads (by rows in forward, by input features in backward), and dx is
  written into the same buffer every step. Split products may round differently.
- :class:`Relu`: no mask in evaluation; dx in the memory order of x. Bit-equal.
- :class:`Dropout`: the mask made in kept buffers from the same draws. Bit-equal.
- :class:`BatchNormalization`: training computes the reference's operations in the same
  order with fewer temporaries (bit-equal); evaluation is one scale and one shift per feature,
  γ / √(σ² + eps) and β - μ · γ / √(σ² + eps) (rounded differently).
- :class:`SoftmaxWithLoss`: the sums over the K classes run over contiguous columns
  (column-major), several times faster than over rows of K = 10; with numba, one loop per
  row for the loss and one for dx; rounded differently.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from groundup import layers as core
from groundup._checks import check_array, check_labels, value_error
from groundup.fast import _numba, threads
from groundup.fast.trace import record

# Below this many multiply-adds per thread, a product is not split over threads.
MIN_SPLIT_MACS = 1 << 20


def buffer(kept: np.ndarray | None, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``kept`` when it has this shape and dtype, else a new array (the caller keeps it)."""
    if kept is not None and kept.shape == shape and kept.dtype == dtype:
        return kept
    return np.empty(shape, dtype=dtype)


def buffer_like(kept: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """``kept`` when it has the shape, dtype and memory order of ``like``, else a new one.

    The memory order matters: NumPy sums along a contiguous axis pairwise and along another
    one term after term, so a reduction over a copy in another order rounds differently.
    """
    if (kept is not None and kept.shape == like.shape and kept.dtype == like.dtype
            and kept.strides == like.strides):
        return kept
    return np.empty_like(like)


class Affine:
    """out = x · W + b (see :class:`groundup.layers.Affine`), products split over threads."""

    def __init__(self, layer: core.Affine) -> None:
        self.layer = layer
        self.x: np.ndarray | None = None
        self.x_shape: tuple[int, ...] | None = None
        self._dx: np.ndarray | None = None

    def split(self, rows: int) -> int:
        """Threads to split this layer's products over (inside ``own_threads()`` only)."""
        n = threads.splitting()
        if n > 1 and rows * self.layer.W.size >= n * MIN_SPLIT_MACS:
            return min(n, rows)
        return 1

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        record("affine.fast")
        W, b = self.layer.W, self.layer.b
        self.x_shape = x.shape
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # (N, D)
        if x.shape[1] != W.shape[0]:
            raise value_error("Affine", "x.shape", f"(N, {W.shape[0]}) after flattening",
                              f"={self.x_shape}")
        self.x, self.layer.x = x, None  # the layer's own backward must not run on stale x
        parts = self.split(x.shape[0])
        if parts == 1:
            out = x @ W  # (N, M)
            out += b
            return out
        record("affine.split")
        out = np.empty((x.shape[0], W.shape[1]), dtype=np.result_type(x, W))
        threads.run(lambda lo, hi: self.rows(x, out, lo, hi), threads.bounds(x.shape[0], parts))
        return out

    def rows(self, x: np.ndarray, out: np.ndarray, lo: int, hi: int) -> None:
        """Rows lo..hi-1 of out = x · W + b, each computed as in the one-part product."""
        np.matmul(x[lo:hi], self.layer.W, out=out[lo:hi])
        out[lo:hi] += self.layer.b

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.x is None:
            raise RuntimeError("Affine: backward called before forward.")
        layer, x = self.layer, self.x
        layer.db = np.add.reduce(dout, axis=0)
        parts = self.split(x.shape[0])
        if parts == 1:
            layer.dW = x.T @ dout  # (D, M)
            if not layer.needs_input_grad:
                return None
            return (dout @ layer.W.T).reshape(self.x_shape)
        layer.dW = np.empty(layer.W.shape, dtype=np.result_type(x, dout))
        dx = None
        if layer.needs_input_grad:
            # the model hands dx straight to the layer below, so the next step may reuse it
            dx = self._dx = buffer(self._dx, x.shape, np.result_type(dout, layer.W))
        threads.run(lambda lo, hi: self.features(dout, dx, lo, hi),
                    threads.bounds(layer.W.shape[0], parts))
        return None if dx is None else dx.reshape(self.x_shape)

    def features(self, dout: np.ndarray, dx: np.ndarray | None, lo: int, hi: int) -> None:
        """Input features lo..hi-1: rows of dW = xᵀ · dout and columns of dx = dout · Wᵀ."""
        np.matmul(self.x[:, lo:hi].T, dout, out=self.layer.dW[lo:hi])
        if dx is not None:
            np.matmul(dout, self.layer.W[lo:hi].T, out=dx[:, lo:hi])


class Relu:
    """out = max(0, x), keeping the mask x > 0 in training only."""

    def __init__(self, layer: core.Relu) -> None:
        self.layer = layer
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        record("relu.fast")
        # evaluation keeps no mask (and a backward after it fails instead of using a stale one)
        self.mask = x > 0 if train_flg else None
        self.layer.mask = None
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Relu: backward called before forward.")
        # dx in the memory order of x: the layer below gets its gradient in the layout of
        # its own output and needs no reordering copy
        dx = np.empty_like(self.mask, dtype=np.result_type(dout, self.mask))
        return np.multiply(dout, self.mask, out=dx)


class Dropout:
    """The layer's dropout (same draws from ``layer.rng``, same mask), in kept buffers."""

    def __init__(self, layer: core.Dropout) -> None:
        self.layer = layer
        self._keep: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        layer = self.layer
        p = layer.dropout_ratio
        if not train_flg:
            return x if layer.inverted else x * x.dtype.type(1 - p)
        record("dropout.fast")
        mask = layer.mask
        if not (layer.hold_mask and mask is not None and mask.shape == x.shape):
            u = layer.rng.random(x.shape, dtype=np.float32)
            self._keep = keep = buffer(self._keep, x.shape, np.bool_)
            np.greater_equal(u, np.float32(p), out=keep)
            scale = x.dtype.type(1 / (1 - p) if layer.inverted else 1)
            mask = buffer(mask, x.shape, x.dtype)
            layer.mask = np.multiply(keep, scale, out=mask)
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.layer.backward(dout)


class BatchNormalization:
    """The layer's batch norm; evaluation as one scale and one shift per feature."""

    def __init__(self, layer: core.BatchNormalization) -> None:
        self.layer = layer
        self.xn: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self._tmp: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        layer = self.layer
        x2 = layer.to_2d(x)
        if x2.shape[1] != layer.gamma.shape[0] or (train_flg and x2.shape[0] == 0):
            return layer.forward(x, train_flg)  # raises the layer's error
        record("bn.fast")
        layer.input_shape, layer.xn = x.shape, None
        if not train_flg:
            scale = layer.gamma / np.sqrt(layer.running_var + layer.eps)  # (D,)
            out = x2 * scale
            out += layer.beta - layer.running_mean * scale
            return layer.from_2d(out)
        m = x2.shape[0]
        mu = np.add.reduce(x2, axis=0) / m
        xc = x2 - mu
        self._tmp = tmp = buffer_like(self._tmp, xc)
        var = np.add.reduce(np.multiply(xc, xc, out=tmp), axis=0) / m
        self.std = np.sqrt(var + layer.eps)
        self.xn = np.divide(xc, self.std, out=xc)
        if layer.unbiased_running_var and m > 1:
            var = var * (m / (m - 1))
        layer.running_mean *= layer.momentum
        layer.running_mean += (1 - layer.momentum) * mu
        layer.running_var *= layer.momentum
        layer.running_var += (1 - layer.momentum) * var
        out = layer.gamma * self.xn
        out += layer.beta
        return layer.from_2d(out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.xn is None:
            raise RuntimeError("BatchNormalization: backward called before a training forward.")
        layer, xn = self.layer, self.xn
        d2 = layer.to_2d(dout)
        m = d2.shape[0]
        tmp = self._tmp
        layer.dbeta = np.add.reduce(d2, axis=0)
        layer.dgamma = np.add.reduce(d2 * xn, axis=0)  # in the memory order NumPy picks
        # (γ / std) · (dout - dβ / m - x̂ · dγ / m), the reference's operations in its order
        dx = d2 - layer.dbeta / m
        dx -= np.multiply(xn, layer.dgamma / m, out=tmp)
        dx *= layer.gamma / self.std
        return layer.from_2d(dx)


class SoftmaxWithLoss:
    """The layer's softmax cross-entropy, its sums over the classes column-major.

    With the numba kernels (:mod:`groundup.fast._numba`), class labels in an integer array
    go through one loop per row instead; the range check of the labels happens inside it,
    and only when it fails do the layer's own checks run (and raise its error).
    """

    def __init__(self, layer: core.SoftmaxWithLoss) -> None:
        self.layer = layer
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self.loss: float | None = None
        self._kernels: dict[str, Any] | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        check_array("SoftmaxWithLoss", "x", x, ndim=2, finite=False)
        kernels = _numba.kernels()
        if (kernels is not None and isinstance(t, np.ndarray) and t.ndim == 1
                and t.dtype.kind in "iu" and t.shape[0] == x.shape[0] and x.shape[0]
                and x.dtype in (np.float32, np.float64)):
            record("softmax.numba")
            y = np.empty(x.shape, dtype=x.dtype)
            total = kernels["softmax_loss"](np.ascontiguousarray(x), t, y)
            if total < 0:  # a label out of range: the layer's own check raises
                check_labels("SoftmaxWithLoss", t, x.shape[0], x.shape[1])
            self._kernels, self.t, self.y = kernels, t, y
            self.loss = float(total) / x.shape[0]
            return self.loss
        labels = check_labels("SoftmaxWithLoss", t, x.shape[0], x.shape[1])
        record("softmax.fast")
        n = x.shape[0]
        x = np.asfortranarray(x)
        z = x - np.maximum.reduce(x, axis=1, keepdims=True)
        e = np.exp(z)
        total = np.add.reduce(e, axis=1, keepdims=True)
        # -log softmax(x)[t] = log Σ exp(z) - z[t]
        self.t, self._kernels = labels, None
        self._picked = labels * n + np.arange(n)  # flat column-major index of x[i, t_i]
        self.loss = float(np.add.reduce(np.log(total[:, 0]) - z.ravel("F")[self._picked]) / n)
        e /= total
        self.y = e
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss: backward called before forward.")
        n = self.y.shape[0]
        scale = self.y.dtype.type(dout / n)
        if self._kernels is not None:
            dx = np.empty_like(self.y)
            self._kernels["softmax_grad"](self.y, self.t, scale, dx)
            return dx
        dx = self.y * scale  # keeps the column-major order
        dx.ravel("F")[self._picked] -= scale
        return dx
