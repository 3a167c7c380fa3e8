"""Fast counterparts of the convolution and pooling layers (``groundup.conv``).

- :class:`Convolution` keeps the output in (C, N, H, W) memory order: its product
  W_col · colᵀ, with colᵀ = ``unfold_t(x)`` built directly (rows (c, p, q), columns
  (n, i, j)), produces that order, which saves a transpose copy per layer, and the bias,
  pooling and db then run over contiguous rows. ``unfold_t`` moves runs of OW pixels per
  filter offset instead of runs of FW, several times faster for small filters. The sums
  run in another order than the reference's, so results differ by rounding.
- :class:`Pooling` pools windows that tile the input (stride = window, no padding) by
  reshaping, one element-wise pass per window offset, with no im2col; its maximum and the
  element it picks are the reference's (bit-equal), the average is summed in another order.
  Other geometries run the layer's own code.
- :class:`ReluPoolSwap` runs ReLU → max pool as max pool → ReLU: max(relu(x)) = relu(max(x))
  and both orders send the gradient to the same element (the first maximum of a window when
  it is positive, nowhere otherwise), so results are bit-equal, while the ReLU touches a
  quarter of the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from groundup import conv as core
from groundup._checks import value_error
from groundup.fast.trace import record


def unfold_t(x: np.ndarray, filter_h: int, filter_w: int, stride: int, pad: int,
             out_h: int, out_w: int, out: np.ndarray | None = None) -> np.ndarray:
    """``im2col(x, ...).T`` built directly: rows (c, p, q), columns (n, i, j).

    ``out`` is a buffer kept from the last call, used when it fits (no new pages to fault in).
    """
    n, c = x.shape[:2]
    xt = core.pad_images(x, pad).transpose(1, 0, 2, 3)  # (C, N, H', W') view
    shape = (c, filter_h, filter_w, n, out_h, out_w)
    if out is not None and out.size == math.prod(shape) and out.dtype == x.dtype:
        col_t = out.reshape(shape)
    else:
        col_t = np.empty(shape, dtype=x.dtype)
    for p in range(filter_h):  # one strided copy per filter offset
        for q in range(filter_w):
            col_t[:, p, q] = xt[:, :, p:p + stride * out_h:stride, q:q + stride * out_w:stride]
    return col_t.reshape(c * filter_h * filter_w, n * out_h * out_w)


def fold_t(col_t: np.ndarray, input_shape: tuple[int, int, int, int], filter_h: int,
           filter_w: int, stride: int, pad: int, out_h: int, out_w: int) -> np.ndarray:
    """Adjoint of ``unfold_t``; the image comes back in (C, N, H, W) memory order."""
    n, c, h, w = input_shape
    cols = col_t.reshape(c, filter_h, filter_w, n, out_h, out_w)
    img = np.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=col_t.dtype)
    for p in range(filter_h):
        for q in range(filter_w):
            img[:, :, p:p + stride * out_h:stride, q:q + stride * out_w:stride] += cols[:, p, q]
    return img[:, :, pad:pad + h, pad:pad + w].transpose(1, 0, 2, 3)


class Convolution:
    """The layer's convolution with (C, N, H, W) outputs and the transposed unfold."""

    def __init__(self, layer: core.Convolution) -> None:
        self.layer = layer
        self.col_t: np.ndarray | None = None  # kept across calls, never handed out

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        record("conv.cnhw")
        layer = self.layer
        out_h, out_w = layer.output_hw(x)
        fn, c, fh, fw = layer.W.shape
        self.col_t = unfold_t(x, fh, fw, layer.stride, layer.pad, out_h, out_w, self.col_t)
        out = layer.W.reshape(fn, -1) @ self.col_t  # (FN, N·OH·OW)
        out += layer.b[:, None]
        layer.x_shape, layer.out_hw, layer.col = x.shape, (out_h, out_w), None
        return out.reshape(fn, x.shape[0], out_h, out_w).transpose(1, 0, 2, 3)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        layer = self.layer
        if self.col_t is None or layer.x_shape is None:
            raise RuntimeError("Convolution: backward called before forward.")
        fn, c, fh, fw = layer.W.shape
        expected = (layer.x_shape[0], fn, *layer.out_hw)
        if dout.shape != expected:
            raise value_error("Convolution", "dout.shape", f"{expected} (the forward output's "
                              "shape)", f"={dout.shape}")
        d2 = dout.transpose(1, 0, 2, 3).reshape(fn, -1)  # (FN, N·OH·OW), a view when CNHW
        layer.db = d2.sum(axis=1)
        layer.dW = (d2 @ self.col_t.T).reshape(fn, c, fh, fw)
        if not layer.needs_input_grad:
            return None
        dcol = layer.W.reshape(fn, -1).T @ d2  # (C·FH·FW, N·OH·OW)
        return fold_t(dcol, layer.x_shape, fh, fw, layer.stride, layer.pad, *layer.out_hw)


def tiles(pool: core.Pooling, x_shape: tuple[int, ...]) -> bool:
    """Whether the pooling windows tile an input of this shape (no padding, no overlap)."""
    ph, pw, s = pool.pool_h, pool.pool_w, pool.stride
    return (pool.pad == 0 and s == ph == pw and len(x_shape) == 4
            and x_shape[2] % ph == 0 and x_shape[3] % pw == 0)


class Pooling:
    """The layer's pooling; windows that tile the input are pooled by reshaping."""

    def __init__(self, layer: core.Pooling) -> None:
        self.layer = layer
        self.tiled = False
        self.x: np.ndarray | None = None
        self.out: np.ndarray | None = None
        self.arg: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        layer = self.layer
        self.tiled = tiles(layer, x.shape) and (x.dtype.kind == "f" or layer.mode == "max")
        if not self.tiled:
            return layer.forward(x, train_flg)
        record("pool.tiled")
        out_h, out_w = layer.output_hw(x)
        n, c = x.shape[:2]
        ph, pw = layer.pool_h, layer.pool_w
        layer.x_shape = None  # the layer's own backward must not run on stale state
        windows = x.reshape(n, c, out_h, ph, out_w, pw)  # splitting axes: always a view
        # one element-wise pass per window offset is several times faster than
        # windows.max(axis=(3, 5)), whose reduction walks the short window axes innermost
        out = windows[:, :, :, 0, :, 0].copy(order="K")  # x's memory order, for speed
        self.x, self.out = x, out
        if layer.mode == "avg":
            for k in range(1, ph * pw):
                np.add(out, windows[:, :, :, k // pw, :, k % pw], out=out)
            out *= out.dtype.type(1 / (ph * pw))
            return out
        # the offset of each window's first maximum (row-major, argmax's choice under ties),
        # so that backward is one compare of small integers per offset
        index = np.uint8 if ph * pw <= 256 else np.intp
        arg = np.zeros_like(out, dtype=index)
        greater = np.empty_like(out, dtype=bool)
        moved = np.empty_like(arg)
        for k in range(1, ph * pw):
            offset = windows[:, :, :, k // pw, :, k % pw]
            np.greater(offset, out, out=greater)
            np.maximum(out, offset, out=out)
            # offsets only grow, so max(arg, k·greater) sets arg = k where greater
            # (several times faster than a masked copy)
            np.multiply(greater, index(k), out=moved)
            np.maximum(arg, moved, out=arg)
        self.arg = arg
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if not self.tiled:
            return self.layer.backward(dout)
        if dout.shape != self.out.shape:
            raise value_error("Pooling", "dout.shape", f"{self.out.shape} (the forward "
                              "output's shape)", f"={dout.shape}")
        n, c, oh, ow = dout.shape
        ph, pw = self.layer.pool_h, self.layer.pool_w
        dx = self._dx
        if not (dx is not None and dx.shape == self.x.shape and dx.dtype == dout.dtype
                and dx.strides == self.x.strides):
            # same memory order as x; kept, as the model hands dx straight to the layer below
            dx = self._dx = np.empty_like(self.x, dtype=dout.dtype)
        dx6 = dx.reshape(n, c, oh, ph, ow, pw)
        if self.layer.mode == "avg":
            dx6[...] = (dout * dout.dtype.type(1 / (ph * pw)))[:, :, :, None, :, None]
            return dx
        if dout.strides != self.out.strides:
            # one reordering copy so every pass below runs over matching memory orders
            reordered = np.empty_like(self.out, dtype=dout.dtype)
            reordered[...] = dout
            dout = reordered
        hit = np.empty_like(self.out, dtype=bool)
        for k in range(ph * pw):
            np.equal(self.arg, k, out=hit)
            np.multiply(dout, hit, out=dx6[:, :, :, k // pw, :, k % pw])
        return dx


class ReluPoolSwap:
    """ReLU → max pool computed as max pool → ReLU (see the module docstring)."""

    def __init__(self, relu: Any, pool: Any) -> None:
        self.relu = relu
        self.pool = pool

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        record("relu_pool.swap")
        return self.relu.forward(self.pool.forward(x, train_flg), train_flg)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.pool.backward(self.relu.backward(dout))
