"""Convolution and pooling layers (book ch. 7) on top of ``im2col``/``col2im``.

``im2col`` unrolls every filter-sized patch of a batch of images into one row, so a
convolution becomes a single matrix product; ``col2im`` is its exact adjoint and
scatter-adds rows back into images (the backward pass). Both keep the book's
(``common/util.py``) signatures and layouts, and the input's dtype. ``conv2d_direct`` is
the convolution written as its defining sum, the reference the layers are tested against.

Output size, per spatial axis: out = floor((H + 2·pad - FH) / stride) + 1, as in the book
and PyTorch; rows or columns that a stride does not reach are not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from groundup._checks import check_array, check_choice, check_number, type_error, value_error
from groundup.layers import Layer


def output_size(owner: str, size: int, window: int, stride: int, pad: int, axis: str) -> int:
    """floor((size + 2·pad - window) / stride) + 1, which must be at least 1."""
    span = size + 2 * pad - window
    if span < 0:
        raise value_error(owner, f"output {axis}", "at least 1, where output "
                          f"{axis} = floor(({axis} + 2·pad - window) / stride) + 1",
                          f"=floor(({size} + 2·{pad} - {window}) / {stride}) + 1 = "
                          f"{span // stride + 1}",
                          "use a smaller window or a larger pad.")
    return span // stride + 1


def _check_geometry(owner: str, filter_h: Any, filter_w: Any, stride: Any, pad: Any,
                    names: tuple[str, str] = ("filter_h", "filter_w")) -> None:
    check_number(owner, names[0], filter_h, low=1, integer=True)
    check_number(owner, names[1], filter_w, low=1, integer=True)
    check_number(owner, "stride", stride, low=1, integer=True)
    check_number(owner, "pad", pad, low=0, integer=True)


def pad_images(x: np.ndarray, pad: int, value: Any = 0) -> np.ndarray:
    """``x`` with ``pad`` pixels of ``value`` added on each side of H and W."""
    if not pad:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def im2col(input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> np.ndarray:
    """Unroll every filter-sized patch of a batch of images into a row.

    col[(n·OH + i)·OW + j, (c·FH + p)·FW + q] = x_pad[n, c, i·stride + p, j·stride + q],
    with x_pad the input zero-padded by ``pad`` on each side of H and W, and
    OH = floor((H + 2·pad - FH) / stride) + 1 (OW likewise). The dtype is kept
    (the book's version always returns float64); the result is a new array.

    Shapes: input_data (N, C, H, W); col (N·OH·OW, C·FH·FW).
    """
    owner = "im2col"
    check_array(owner, "input_data", input_data, ndim=4, finite=False)
    _check_geometry(owner, filter_h, filter_w, stride, pad)
    n, c, h, w = input_data.shape
    out_h = output_size(owner, h, filter_h, stride, pad, "height")
    out_w = output_size(owner, w, filter_w, stride, pad, "width")
    x = pad_images(input_data, pad)
    # (N, C, H', W', FH, FW): every window as a read-only view, no data moved; the stride
    # keeps every stride-th one
    windows = sliding_window_view(x, (filter_h, filter_w), axis=(2, 3))[:, :, ::stride, ::stride]
    # (N, C, OH, OW, FH, FW) → rows (n, i, j), columns (c, p, q): the one copy
    col = windows.transpose(0, 2, 3, 1, 4, 5).copy()
    return col.reshape(n * out_h * out_w, c * filter_h * filter_w)


def col2im(col: np.ndarray, input_shape: tuple[int, int, int, int], filter_h: int,
           filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Adjoint of ``im2col``: add each entry of ``col`` back onto the pixel it came from.

    img[n, c, y, x] = Σ col[(n·OH + i)·OW + j, (c·FH + p)·FW + q] over all (i, j, p, q)
    with i·stride + p - pad = y and j·stride + q - pad = x, so
    ⟨im2col(x), col⟩ = ⟨x, col2im(col)⟩ for every x and col. Entries that fall in the
    padding are dropped. The dtype of ``col`` is kept.

    Shapes: col (N·OH·OW, C·FH·FW); input_shape (N, C, H, W); img (N, C, H, W).
    """
    owner = "col2im"
    check_array(owner, "col", col, ndim=2, finite=False)
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                       and d >= 1 for d in input_shape)):
        raise value_error(owner, "input_shape", "4 positive ints (N, C, H, W)", input_shape)
    _check_geometry(owner, filter_h, filter_w, stride, pad)
    n, c, h, w = (int(d) for d in input_shape)
    out_h = output_size(owner, h, filter_h, stride, pad, "height")
    out_w = output_size(owner, w, filter_w, stride, pad, "width")
    expected = (n * out_h * out_w, c * filter_h * filter_w)
    if col.shape != expected:
        raise value_error(owner, "col.shape", f"{expected} (N·OH·OW, C·FH·FW) for this "
                          "input_shape, filter, stride and pad", f"={col.shape}")
    col = col.reshape(n, out_h, out_w, c, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=col.dtype)
    for p in range(filter_h):  # the filter offset (p, q) of every window at once
        p_stop = p + stride * out_h
        for q in range(filter_w):
            q_stop = q + stride * out_w
            img[:, :, p:p_stop:stride, q:q_stop:stride] += col[:, :, p, q]  # (N, C, OH, OW)
    return img[:, :, pad:pad + h, pad:pad + w]


def conv2d_direct(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int = 1,
                  pad: int = 0) -> np.ndarray:
    """The convolution as its defining sum, one output position at a time (slow, plain).

    out[n, f, i, j] = b[f] + Σ_{c,p,q} W[f, c, p, q] · x_pad[n, c, i·stride + p, j·stride + q].

    Shapes: x (N, C, H, W); W (FN, C, FH, FW); b (FN,); out (N, FN, OH, OW).
    """
    fh, fw = W.shape[2:]
    out_h = output_size("conv2d_direct", x.shape[2], fh, stride, pad, "height")
    out_w = output_size("conv2d_direct", x.shape[3], fw, stride, pad, "width")
    xp = pad_images(x, pad)
    out = np.empty((x.shape[0], W.shape[0], out_h, out_w), dtype=np.result_type(x, W))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
            out[:, :, i, j] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


class Convolution(Layer):
    """2-D convolution (cross-correlation, as in the book and PyTorch) via im2col and GEMM.

    out[n, f, i, j] = b[f] + Σ_{c,p,q} W[f, c, p, q] · x_pad[n, c, i·stride + p, j·stride + q].
    Forward: out = im2col(x) · W_col + b with W_col = W.reshape(FN, -1)ᵀ.
    Backward: db = Σ dout, dW = im2col(x)ᵀ · dout, dx = col2im(dout · W_colᵀ). With
    ``needs_input_grad = False`` (the first layer of a net) dx is skipped and None returned.

    Shapes: x (N, C, H, W); W (FN, C, FH, FW); b (FN,); out (N, FN, OH, OW) with
    OH = floor((H + 2·pad - FH) / stride) + 1 (OW likewise).
    """

    param_names = ("W", "b")

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        owner = "Convolution"
        check_array(owner, "W", W, ndim=4)
        check_array(owner, "b", b, ndim=1)
        if b.shape[0] != W.shape[0]:
            raise value_error(owner, "b.shape", f"({W.shape[0]},) to match W.shape[0] (FN)",
                              f"={b.shape}")
        check_number(owner, "stride", stride, low=1, integer=True)
        check_number(owner, "pad", pad, low=0, integer=True)
        self.W = W
        self.b = b
        self.stride = int(stride)
        self.pad = int(pad)
        self.needs_input_grad = True
        self.x_shape: tuple[int, int, int, int] | None = None
        self.out_hw: tuple[int, int] | None = None
        self.col: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def output_hw(self, x: np.ndarray) -> tuple[int, int]:
        """Check ``x`` against the filters and return the output's (OH, OW)."""
        owner = "Convolution"
        check_array(owner, "x", x, ndim=4, finite=False)
        c, fh, fw = self.W.shape[1:]
        if x.shape[1] != c:
            raise value_error(owner, "x.shape", f"(N, {c}, H, W) to match W.shape[1] (C)",
                              f"={x.shape}")
        return (output_size(owner, x.shape[2], fh, self.stride, self.pad, "height"),
                output_size(owner, x.shape[3], fw, self.stride, self.pad, "width"))

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        out_h, out_w = self.output_hw(x)
        fn, c, fh, fw = self.W.shape
        col = im2col(x, fh, fw, self.stride, self.pad)  # (N·OH·OW, C·FH·FW)
        col_W = self.W.reshape(fn, -1).T  # (C·FH·FW, FN)
        out = col @ col_W + self.b  # (N·OH·OW, FN)
        self.x_shape, self.out_hw, self.col = x.shape, (out_h, out_w), col
        return out.reshape(x.shape[0], out_h, out_w, fn).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.col is None:
            raise RuntimeError("Convolution: backward called before forward.")
        fn, c, fh, fw = self.W.shape
        expected = (self.x_shape[0], fn, *self.out_hw)
        if dout.shape != expected:
            raise value_error("Convolution", "dout.shape", f"{expected} (the forward output's "
                              "shape)", f"={dout.shape}")
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)  # (N·OH·OW, FN), rows as in col
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(fn, c, fh, fw)
        if not self.needs_input_grad:
            return None
        dcol = dout @ self.W.reshape(fn, -1)  # (N·OH·OW, C·FH·FW)
        return col2im(dcol, self.x_shape, fh, fw, self.stride, self.pad)

    def get_config(self) -> dict[str, Any]:
        return {"stride": self.stride, "pad": self.pad}


POOL_MODES = {"max": "max", "avg": "avg", "average": "avg"}


def lowest(dtype: np.dtype) -> Any:
    """The value no element of ``dtype`` is below: -inf for floats."""
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


class Pooling(Layer):
    """Max or average pooling over pool_h × pool_w windows, per channel.

    Max: out[n, c, i, j] = max_{p,q} x_pad[n, c, i·stride + p, j·stride + q]; the gradient
    goes to the first maximal element of each window in row-major order (``argmax``'s
    choice), also under ties. Average: out = mean over the window, dx spreads
    dout / (ph·pw); padded zeros count in the average (PyTorch's ``count_include_pad=True``).
    Each window is one row of ``im2col``, so both are a reduction over rows.

    Unlike the book's ``Pooling``, max pooling pads with -inf, so padding never wins a
    window (the book pads with 0, which turns all-negative windows at the border into 0),
    and the output size accounts for ``pad`` (the book's ignores it). ``stride`` keeps the
    book's default of 1; ``stride=None`` means the window size.

    Shapes: x (N, C, H, W); out (N, C, OH, OW) with OH = floor((H + 2·pad - pool_h) /
    stride) + 1 (OW likewise).
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int | None = 1, pad: int = 0, *,
                 mode: str = "max") -> None:
        owner = "Pooling"
        check_number(owner, "pool_h", pool_h, low=1, integer=True)
        check_number(owner, "pool_w", pool_w, low=1, integer=True)
        if stride is None:
            if pool_h != pool_w:
                raise value_error(owner, "stride", "an int when pool_h != pool_w", stride,
                                  "None (the window size) needs pool_h == pool_w.")
            stride = pool_h
        _check_geometry(owner, pool_h, pool_w, stride, pad, ("pool_h", "pool_w"))
        if not isinstance(mode, str):
            raise type_error(owner, "mode", "a str", mode)
        self.mode = POOL_MODES[check_choice(owner, "mode", mode.lower(), POOL_MODES)]
        self.pool_h = int(pool_h)
        self.pool_w = int(pool_w)
        self.stride = int(stride)
        self.pad = int(pad)
        self.x_shape: tuple[int, int, int, int] | None = None
        self.arg_max: np.ndarray | None = None

    def output_hw(self, x: np.ndarray) -> tuple[int, int]:
        """Check ``x`` against the window and return the output's (OH, OW)."""
        check_array("Pooling", "x", x, ndim=4, finite=False)
        s, p = self.stride, self.pad
        return (output_size("Pooling", x.shape[2], self.pool_h, s, p, "height"),
                output_size("Pooling", x.shape[3], self.pool_w, s, p, "width"))

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        out_h, out_w = self.output_hw(x)
        n, c = x.shape[:2]
        if self.mode == "avg" and x.dtype.kind != "f":
            x = x.astype(np.float64)  # a mean of integers is not an integer
        # pad here rather than in im2col, whose padding is 0: -inf never wins a max
        xp = pad_images(x, self.pad, lowest(x.dtype) if self.mode == "max" else 0)
        col = im2col(xp, self.pool_h, self.pool_w, self.stride)  # (N·OH·OW, C·PH·PW)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # one window per row: (n, i, j, c)
        if self.mode == "max":
            self.arg_max = col.argmax(axis=1)
            out = col.max(axis=1)
        else:
            out = col.mean(axis=1)
        self.x_shape = xp.shape
        return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise RuntimeError("Pooling: backward called before forward.")
        n, c, hp, wp = self.x_shape
        ph, pw, s, pad = self.pool_h, self.pool_w, self.stride, self.pad
        out_h, out_w = (hp - ph) // s + 1, (wp - pw) // s + 1
        if dout.shape != (n, c, out_h, out_w):
            raise value_error("Pooling", "dout.shape", f"{(n, c, out_h, out_w)} "
                              "(the forward output's shape)", f"={dout.shape}")
        dout = dout.transpose(0, 2, 3, 1).reshape(-1)  # (N·OH·OW·C,), one per window row
        if self.mode == "max":
            dmax = np.zeros((dout.size, ph * pw), dtype=dout.dtype)
            dmax[np.arange(dout.size), self.arg_max] = dout  # all to the window's maximum
        else:
            dmax = np.repeat(dout[:, None] / (ph * pw), ph * pw, axis=1)  # spread evenly
        dcol = dmax.reshape(n * out_h * out_w, -1)  # (N·OH·OW, C·PH·PW)
        dx = col2im(dcol, self.x_shape, ph, pw, s)
        return dx[:, :, pad:hp - pad, pad:wp - pad]

    def get_config(self) -> dict[str, Any]:
        return {"pool_h": self.pool_h, "pool_w": self.pool_w, "stride": self.stride,
                "pad": self.pad, "mode": self.mode}
