"""Convolution and pooling layers (book ch. 7) on top of ``im2col``/``col2im``.

``im2col`` unrolls every filter-sized patch of a batch of images into one row, so a
convolution becomes a single matrix product; ``col2im`` is its exact adjoint and
scatter-adds rows back into images (the backward pass). Both keep the book's
(``common/util.py``) signatures and layouts, and the input's dtype.

Output size, per spatial axis: out = floor((H + 2·pad - FH) / stride) + 1, as in the book
and PyTorch; rows or columns that a stride does not reach are not used.

A convolution's output is a view in (C, N, H, W) memory order: its matrix product
W_col · im2col(x)ᵀ produces that order, and keeping it saves a transpose copy per layer,
while bias, pooling and the bias gradient then run over contiguous rows. Every layer
accepts its input and ``dout`` in any memory order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from groundup._checks import check_array, check_choice, check_number, type_error, value_error
from groundup.fast import threads as _threads
from groundup.layers import Layer, Relu


def _output_size(owner: str, size: int, window: int, stride: int, pad: int,
                 axis: str) -> int:
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


def _pad_value(dtype: np.dtype, lowest: bool) -> Any:
    if not lowest:
        return 0
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _unfold(x: np.ndarray, filter_h: int, filter_w: int, stride: int, pad: int,
            out_h: int, out_w: int, fill: Any = 0) -> np.ndarray:
    """The book's im2col layout with one copy of the patches (plus the padded input)."""
    n, c, h, w = x.shape
    if pad:
        padded = np.full((n, c, h + 2 * pad, w + 2 * pad), fill, dtype=x.dtype)
        padded[:, :, pad:pad + h, pad:pad + w] = x
        x = padded
    # (N, C, H', W', FH, FW) read-only view of every window, no data moved
    windows = sliding_window_view(x, (filter_h, filter_w), axis=(2, 3))
    windows = windows[:, :, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    col = np.empty((n * out_h * out_w, c * filter_h * filter_w), dtype=x.dtype)
    # the single copy: (N, C, OH, OW, FH, FW) → rows (n, oh, ow), columns (c, fh, fw)
    np.copyto(col.reshape(n, out_h, out_w, c, filter_h, filter_w),
              windows.transpose(0, 2, 3, 1, 4, 5))
    return col


def _fold(col: np.ndarray, input_shape: tuple[int, int, int, int], filter_h: int,
          filter_w: int, stride: int, pad: int, out_h: int, out_w: int) -> np.ndarray:
    """Adjoint of ``_unfold``: scatter-add each row's entries back to their pixels."""
    n, c, h, w = input_shape
    cols = col.reshape(n, out_h, out_w, c, filter_h, filter_w)
    # (N, H+2p, W+2p, C) memory order: each slice added below is then a run over C and OW
    img = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=col.dtype)
    h_stop = stride * (out_h - 1) + 1
    w_stop = stride * (out_w - 1) + 1
    for i in range(filter_h):
        for j in range(filter_w):
            img[:, i:i + h_stop:stride, j:j + w_stop:stride, :] += cols[:, :, :, :, i, j]
    return img[:, pad:pad + h, pad:pad + w, :].transpose(0, 3, 1, 2)


def _zero_pad(x: np.ndarray, pad: int) -> np.ndarray:
    if not pad:
        return x
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    return padded


def _unfold_t(x: np.ndarray, filter_h: int, filter_w: int, stride: int, pad: int,
              out_h: int, out_w: int, out: np.ndarray | None = None) -> np.ndarray:
    """``_unfold(...).T`` built directly: rows (c, fh, fw), columns (n, oh, ow).

    One strided copy per filter offset, each moving runs of OW pixels, instead of runs of
    FW in the row layout: several times faster for the small filters of these nets.
    """
    n, c = x.shape[:2]
    x = _zero_pad(x, pad)
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H', W') view
    h_stop = stride * (out_h - 1) + 1
    w_stop = stride * (out_w - 1) + 1
    shape = (c, filter_h, filter_w, n, out_h, out_w)
    if out is not None and out.size == math.prod(shape) and out.dtype == x.dtype:
        col_t = out.reshape(shape)  # a buffer kept from the last call: no new pages to fault in
    else:
        col_t = np.empty(shape, dtype=x.dtype)
    for i in range(filter_h):
        for j in range(filter_w):
            col_t[:, i, j] = xt[:, :, i:i + h_stop:stride, j:j + w_stop:stride]
    return col_t.reshape(c * filter_h * filter_w, n * out_h * out_w)


def _fold_t(col_t: np.ndarray, input_shape: tuple[int, int, int, int], filter_h: int,
            filter_w: int, stride: int, pad: int, out_h: int, out_w: int) -> np.ndarray:
    """Adjoint of ``_unfold_t``; the image comes back in (C, N, H, W) memory order."""
    n, c, h, w = input_shape
    cols = col_t.reshape(c, filter_h, filter_w, n, out_h, out_w)
    img = np.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=col_t.dtype)
    h_stop = stride * (out_h - 1) + 1
    w_stop = stride * (out_w - 1) + 1
    for i in range(filter_h):
        for j in range(filter_w):
            img[:, :, i:i + h_stop:stride, j:j + w_stop:stride] += cols[:, i, j]
    return img[:, :, pad:pad + h, pad:pad + w].transpose(1, 0, 2, 3)


def _check_images(owner: str, arg: str, x: Any) -> np.ndarray:
    return check_array(owner, arg, x, ndim=4, finite=False)


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
    _check_images(owner, "input_data", input_data)
    _check_geometry(owner, filter_h, filter_w, stride, pad)
    n, c, h, w = input_data.shape
    out_h = _output_size(owner, h, filter_h, stride, pad, "height")
    out_w = _output_size(owner, w, filter_w, stride, pad, "width")
    return _unfold(input_data, filter_h, filter_w, stride, pad, out_h, out_w)


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
    out_h = _output_size(owner, h, filter_h, stride, pad, "height")
    out_w = _output_size(owner, w, filter_w, stride, pad, "width")
    expected = (n * out_h * out_w, c * filter_h * filter_w)
    if col.shape != expected:
        raise value_error(owner, "col.shape", f"{expected} (N·OH·OW, C·FH·FW) for this "
                          "input_shape, filter, stride and pad", f"={col.shape}")
    return _fold(col, (n, c, h, w), filter_h, filter_w, stride, pad, out_h, out_w)


class Convolution(Layer):
    """2-D convolution (cross-correlation, as in the book and PyTorch) via im2col and GEMM.

    out[n, f, i, j] = b[f] + Σ_{c,p,q} W[f, c, p, q] · x_pad[n, c, i·stride + p, j·stride + q].
    Forward: outᵀ = W_col · im2col(x)ᵀ + b with W_col = W.reshape(FN, -1).
    Backward: db = Σ dout, dW = doutᵀ · im2col(x), dx = col2im(dout · W_col). With
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
        _check_images(owner, "x", x)
        c, fh, fw = self.W.shape[1:]
        if x.shape[1] != c:
            raise value_error(owner, "x.shape", f"(N, {c}, H, W) to match W.shape[1] (C)",
                              f"={x.shape}")
        return (_output_size(owner, x.shape[2], fh, self.stride, self.pad, "height"),
                _output_size(owner, x.shape[3], fw, self.stride, self.pad, "width"))

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        out_h, out_w = self.output_hw(x)
        fn, c, fh, fw = self.W.shape
        n = x.shape[0]
        # columns are (n, oh, ow): the product lands in (FN, N, OH, OW) memory order, where
        # the bias, pooling and db below all run over contiguous rows
        col_t = _unfold_t(x, fh, fw, self.stride, self.pad, out_h, out_w,
                          out=self.col)  # (C·FH·FW, N·OH·OW); self.col is never handed out
        out = self.W.reshape(fn, -1) @ col_t  # (FN, N·OH·OW)
        out += self.b[:, None]
        self.x_shape = x.shape
        self.out_hw = (out_h, out_w)
        self.col = col_t
        return out.reshape(fn, n, out_h, out_w).transpose(1, 0, 2, 3)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self.col is None:
            raise RuntimeError("Convolution: backward called before forward.")
        fn, c, fh, fw = self.W.shape
        n = self.x_shape[0]
        out_h, out_w = self.out_hw
        if dout.shape != (n, fn, out_h, out_w):
            raise value_error("Convolution", "dout.shape", f"{(n, fn, out_h, out_w)} "
                              "(the forward output's shape)", f"={dout.shape}")
        d2 = dout.transpose(1, 0, 2, 3).reshape(fn, -1)  # (FN, N·OH·OW), a view when CNHW
        self.db = d2.sum(axis=1)
        self.dW = (d2 @ self.col.T).reshape(fn, c, fh, fw)
        if not self.needs_input_grad:
            return None
        dcol = self.W.reshape(fn, -1).T @ d2  # (C·FH·FW, N·OH·OW)
        return _fold_t(dcol, self.x_shape, fh, fw, self.stride, self.pad, out_h, out_w)

    def get_config(self) -> dict[str, Any]:
        return {"stride": self.stride, "pad": self.pad}


POOL_MODES = {"max": "max", "avg": "avg", "average": "avg"}


class Pooling(Layer):
    """Max or average pooling over pool_h × pool_w windows, per channel.

    Max: out[n, c, i, j] = max_{p,q} x_pad[n, c, i·stride + p, j·stride + q]; the gradient
    goes to the first maximal element of each window in row-major order (as argmax picks
    it), also under ties. Average: out = mean over the window, dx spreads dout / (ph·pw);
    padded zeros count in the average (PyTorch's ``count_include_pad=True``).

    Unlike the book's ``Pooling``, max pooling pads with -inf, so padding never wins a
    window (the book pads with 0, which turns all-negative windows at the border into 0),
    and the output size accounts for ``pad`` (the book's ignores it). ``stride`` keeps the
    book's default of 1; ``stride=None`` means the window size. Non-overlapping windows
    that tile the input (stride = pool_h = pool_w, pad 0) take a reshape-based path with
    no im2col.

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
        self.x: np.ndarray | None = None
        self.out: np.ndarray | None = None
        self.arg_max: np.ndarray | None = None
        self.tiled = False
        # Set by a model that owns the layer and consumes dx at once: backward may then write
        # dx into the same buffer every step instead of faulting in fresh pages.
        self.reuse_buffers = False
        self._dx: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        owner = "Pooling"
        _check_images(owner, "x", x)
        ph, pw, s = self.pool_h, self.pool_w, self.stride
        n, c, h, w = x.shape
        out_h = _output_size(owner, h, ph, s, self.pad, "height")
        out_w = _output_size(owner, w, pw, s, self.pad, "width")
        if self.mode == "avg" and x.dtype.kind != "f":
            x = x.astype(np.float64)  # a mean of integers is not an integer
        self.x = x
        self.tiled = self.pad == 0 and s == ph == pw and h % ph == 0 and w % pw == 0
        if self.tiled:
            self.out = self._tiled_forward(x, out_h, out_w)
            return self.out
        col = _unfold(x, ph, pw, s, self.pad, out_h, out_w,
                      fill=_pad_value(x.dtype, self.mode == "max"))
        col = col.reshape(-1, ph * pw)  # rows (n, oh, ow, c)
        if self.mode == "max":
            self.arg_max = col.argmax(axis=1)
            out = np.take_along_axis(col, self.arg_max[:, None], axis=1)
        else:
            out = col.mean(axis=1)
        self.out = out
        return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise RuntimeError("Pooling: backward called before forward.")
        ph, pw, s = self.pool_h, self.pool_w, self.stride
        n, c, h, w = self.x.shape
        out_h = _output_size("Pooling", h, ph, s, self.pad, "height")
        out_w = _output_size("Pooling", w, pw, s, self.pad, "width")
        if dout.shape != (n, c, out_h, out_w):
            raise value_error("Pooling", "dout.shape", f"{(n, c, out_h, out_w)} "
                              "(the forward output's shape)", f"={dout.shape}")
        if self.tiled:
            return self._tiled_backward(dout)
        size = ph * pw
        d1 = dout.transpose(0, 2, 3, 1).reshape(-1)  # (N·OH·OW·C,), row order of col
        if self.mode == "max":
            dcol = np.zeros((d1.shape[0], size), dtype=dout.dtype)
            np.put_along_axis(dcol, self.arg_max[:, None], d1[:, None], axis=1)
        else:
            dcol = np.empty((d1.shape[0], size), dtype=dout.dtype)
            dcol[...] = (d1 * dout.dtype.type(1 / size))[:, None]
        return _fold(dcol.reshape(n * out_h * out_w, c * size), self.x.shape, ph, pw, s,
                     self.pad, out_h, out_w)

    def _tiled_forward(self, x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
        n, c = x.shape[:2]
        ph, pw = self.pool_h, self.pool_w
        windows = x.reshape(n, c, out_h, ph, out_w, pw)  # splitting axes: always a view
        # one element-wise pass per window offset is several times faster than
        # windows.max(axis=(3, 5)), whose reduction walks the short window axes innermost
        out = windows[:, :, :, 0, :, 0].copy(order="K")  # x's memory order, for speed
        if self.mode == "avg":
            for p in range(ph):
                for q in range(pw):
                    if p or q:
                        np.add(out, windows[:, :, :, p, :, q], out=out)
            out *= out.dtype.type(1 / (ph * pw))
            return out
        # the offset of each window's first maximum (row-major, argmax's choice under ties),
        # so that backward is one compare of small integers per offset
        index = np.uint8 if ph * pw <= 256 else np.intp
        arg = np.zeros_like(out, dtype=index)
        greater = np.empty_like(out, dtype=bool)
        moved = np.empty_like(arg)
        for p in range(ph):
            for q in range(pw):
                if p or q:
                    offset = windows[:, :, :, p, :, q]
                    np.greater(offset, out, out=greater)
                    np.maximum(out, offset, out=out)
                    # offsets only grow, so max(arg, k·greater) sets arg = k where greater
                    # (several times faster than a masked copy)
                    np.multiply(greater, index(p * pw + q), out=moved)
                    np.maximum(arg, moved, out=arg)
        self.arg_max = arg
        return out

    def _tiled_backward(self, dout: np.ndarray) -> np.ndarray:
        n, c, oh, ow = dout.shape
        ph, pw = self.pool_h, self.pool_w
        dx = self._dx
        if not (self.reuse_buffers and dx is not None and dx.shape == self.x.shape
                and dx.dtype == dout.dtype and dx.strides == self.x.strides):
            dx = np.empty_like(self.x, dtype=dout.dtype)  # same memory order as x
            self._dx = dx if self.reuse_buffers else None
        dx6 = dx.reshape(n, c, oh, ph, ow, pw)
        if self.mode == "avg":
            dx6[...] = (dout * dout.dtype.type(1 / (ph * pw)))[:, :, :, None, :, None]
            return dx
        if dout.strides != self.out.strides:
            # one reordering copy so every pass below runs over matching memory orders
            reordered = np.empty_like(self.out, dtype=dout.dtype)
            reordered[...] = dout
            dout = reordered
        hit = np.empty_like(self.out, dtype=bool)
        for p in range(ph):
            for q in range(pw):
                np.equal(self.arg_max, p * pw + q, out=hit)
                np.multiply(dout, hit, out=dx6[:, :, :, p, :, q])
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"pool_h": self.pool_h, "pool_w": self.pool_w, "stride": self.stride,
                "pad": self.pad, "mode": self.mode}


# A block's forward cuts the batch into chunks of at least this many samples, spread over
# the threads (fewer, larger chunks run faster; a fixed cut keeps results thread-independent).
_CHUNK_SAMPLES = 50


class ConvReluPool:
    """Convolution → ReLU → max pooling over non-overlapping windows, computed as one block.

    A model runs this in place of its three layers (in either order of ReLU and pooling);
    the layers keep their parameters and receive ``dW``/``db`` as if they had run alone.
    The im2col columns are ordered (window offset, n, i, j) instead of (n, oh, ow), so the
    product W_col · col holds one contiguous (FN, N·QH·QW) block per window offset and
    pooling is a running maximum over those blocks (the first maximum wins ties, as
    argmax picks it). The bias is added after pooling, to the pooled map only:
    max(y) + b equals max(y + b) exactly because rounding is monotone. Backward
    scatters dout into the winning blocks, so dW = D · colᵀ is one product per window
    offset, and db is a sum over the pooled map. Results equal the layer-by-layer ones up
    to float rounding (the order of the sums in dW, db and dx differs).

    Inside ``_threads.own_threads()`` the work is split over groundup's threads: forward
    by chunks of samples cut at fixed places, backward by output channels (ReLU mask, db),
    window offsets (dW, dx products) and input channels (dx fold). Sums are taken in a
    fixed order, so results do not depend on the thread count. Buffers are kept across
    training calls and never handed out, except the output when ``reuse_output`` is set
    (by a model, when another layer consumes the output within the same step).

    Inputs the block does not tile (a pooled size that does not divide the convolution's
    output) run the three layers one by one.
    """

    def __init__(self, conv: Convolution, relu: Layer, pool: Pooling) -> None:
        self.conv = conv
        self.relu = relu
        self.pool = pool
        self.reuse_output = False
        self._buffers: dict[str, np.ndarray] = {}
        self._split: bool | None = None  # None: no forward yet; True: layer by layer

    @staticmethod
    def fusable(conv: Any, relu: Any, pool: Any) -> bool:
        """Whether three consecutive layers (ReLU and pooling in either order) qualify."""
        if type(relu) is Pooling and type(pool) is Relu:
            relu, pool = pool, relu
        return (type(conv) is Convolution and type(relu) is Relu and type(pool) is Pooling
                and pool.mode == "max" and pool.pad == 0
                and pool.stride == pool.pool_h == pool.pool_w)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any,
                keep: bool = True) -> np.ndarray:
        if not keep:  # evaluation batches (often larger) leave the training buffers alone
            return np.empty(shape, dtype=dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    @staticmethod
    def _parts(size: int, threads: int) -> list[tuple[int, int]]:
        return _threads.bounds(size, max(1, min(threads, size)))

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        conv, pool = self.conv, self.pool
        out_h, out_w = conv.output_hw(x)
        ph, pw = pool.pool_h, pool.pool_w
        self._split = out_h % ph != 0 or out_w % pw != 0
        if self._split:
            for layer in (conv, self.relu, pool):
                x = layer.forward(x, train_flg)
            return x
        fn, c, fh, fw = conv.W.shape
        n = x.shape[0]
        s = conv.stride
        qh, qw = out_h // ph, out_w // pw
        windows, m = ph * pw, n * qh * qw
        dtype = np.result_type(x.dtype, conv.W.dtype)
        threads = _threads.splitting()
        xp = _zero_pad(x, conv.pad)
        sn, sc, sh, sw = xp.strides
        # view[p, q, c, a, b, n, i, j] = xp[n, c, s·(ph·i + p) + a, s·(pw·j + q) + b]: a
        # read-only view of valid memory (the last index is s·(OH - 1) + FH - 1 < H')
        view = as_strided(xp, shape=(ph, pw, c, fh, fw, n, qh, qw),
                          strides=(s * sh, s * sw, sc, sh, sw, sn, s * ph * sh, s * pw * sw),
                          writeable=False)
        col = self._buffer("col", (c * fh * fw, windows, m), dtype, train_flg)  # rows (c, a, b)
        col8 = col.reshape(c, fh, fw, ph, pw, n, qh, qw)
        y = self._buffer("y", (fn, windows, m), dtype, train_flg)
        w_col = conv.W.reshape(fn, -1)

        if self.reuse_output:
            out = self._buffer("out", (n, fn, qh, qw), dtype, train_flg)
        else:
            out = np.empty((n, fn, qh, qw), dtype=dtype)  # the (N, C, H, W) order Affine wants
        work = {"y": y, "pooled": self._buffer("pooled", (fn, m), dtype, train_flg),
                "out_t": out.transpose(1, 0, 2, 3)}
        if train_flg:
            index = np.uint8 if windows <= 256 else np.intp
            work.update(arg=self._buffer("arg", (fn, m), index),
                        greater=self._buffer("greater", (fn, m), bool),
                        moved=self._buffer("moved", (fn, m), index),
                        mask=self._buffer("mask", (fn, n, qh, qw), bool))
        per_sample = qh * qw

        # the products are cut at fixed samples: how a BLAS rounds can depend on where a
        # product's columns are cut, and results must not depend on the thread count
        chunks = self._parts(n, max(1, n // _CHUNK_SAMPLES))

        def samples(first: int, stop: int) -> None:  # chunks first..stop-1, start to end
            for lo, hi in chunks[first:stop]:
                cols = slice(lo * per_sample, hi * per_sample)
                for k in range(windows):
                    p, q = divmod(k, pw)
                    np.copyto(col8[:, :, :, p, q, lo:hi], view[p, q, :, :, :, lo:hi])
                    np.matmul(w_col, col[:, k, cols], out=y[:, k, cols])
                self._pool(work, cols, slice(lo, hi), train_flg)

        _threads.run(samples, self._parts(len(chunks), threads))
        # the layers' own state would be stale: their backward must not run on it
        conv.x_shape, conv.out_hw, conv.col = x.shape, (out_h, out_w), None
        self.relu.mask = pool.x = None
        if train_flg:
            self._work = work
            self._geometry = (x.shape, out_h, out_w)
        return out

    def _pool(self, work: dict[str, Any], cols: slice, batch: slice, train_flg: bool) -> None:
        """Max over the window blocks, + bias, ReLU, for the columns of samples ``batch``."""
        y = work["y"][:, :, cols]
        pooled = work["pooled"][:, cols]
        np.copyto(pooled, y[:, 0])
        if train_flg:
            arg, greater, moved = (work[key][:, cols] for key in ("arg", "greater", "moved"))
            arg[...] = 0
        for k in range(1, y.shape[1]):
            if train_flg:
                np.greater(y[:, k], pooled, out=greater)
                # offsets only grow, so max(arg, k·greater) sets arg = k where greater
                np.multiply(greater, arg.dtype.type(k), out=moved)
                np.maximum(arg, moved, out=arg)
            np.maximum(pooled, y[:, k], out=pooled)
        out_t = work["out_t"][:, batch]
        np.add(pooled.reshape(out_t.shape), self.conv.b.reshape(-1, 1, 1, 1), out=out_t)
        if train_flg:
            np.greater(out_t, 0, out=work["mask"][:, batch])
        np.maximum(out_t, 0, out=out_t)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._split is None:
            raise RuntimeError("ConvReluPool: backward called before forward.")
        if self._split:
            for layer in (self.pool, self.relu, self.conv):
                dout = layer.backward(dout)
            return dout
        conv = self.conv
        fn, c, fh, fw = conv.W.shape
        x_shape, out_h, out_w = self._geometry
        n = x_shape[0]
        ph, pw = self.pool.pool_h, self.pool.pool_w
        qh, qw = out_h // ph, out_w // pw
        windows, m = ph * pw, n * qh * qw
        if dout.shape != (n, fn, qh, qw):
            raise value_error("ConvReluPool", "dout.shape", f"{(n, fn, qh, qw)} (the forward "
                              "output's shape)", f"={dout.shape}")
        work = self._work
        dtype = work["y"].dtype
        threads = _threads.splitting()
        dpool = self._buffer("dpool", (fn, n, qh, qw), dtype)
        db = np.empty(fn, dtype=dtype)
        dout_t, mask = dout.transpose(1, 0, 2, 3), work["mask"]

        def relu_grad(lo: int, hi: int) -> None:  # output channels lo..hi-1
            np.multiply(dout_t[lo:hi], mask[lo:hi], out=dpool[lo:hi])
            db[lo:hi] = dpool[lo:hi].reshape(hi - lo, -1).sum(axis=1)

        _threads.run(relu_grad, self._parts(fn, threads))
        dpool = dpool.reshape(fn, m)
        col = self._buffers["col"]
        d = self._buffer("d", (fn, windows, m), dtype)
        hit = self._buffer("hit", (windows, fn, m), bool)
        partial = np.empty((windows, fn, c * fh * fw), dtype=dtype)
        arg = work["arg"]

        def scatter_and_multiply(lo: int, hi: int) -> None:  # window offsets lo..hi-1
            for k in range(lo, hi):
                np.equal(arg, k, out=hit[k])
                np.multiply(dpool, hit[k], out=d[:, k])
                np.matmul(d[:, k], col[:, k].T, out=partial[k])

        _threads.run(scatter_and_multiply, self._parts(windows, threads))
        dw = partial[0]
        for k in range(1, windows):  # a fixed order, whatever the thread count
            dw += partial[k]
        conv.db = db
        conv.dW = dw.reshape(conv.W.shape)
        if not conv.needs_input_grad:
            return None
        dcol = np.empty((c * fh * fw, windows, m), dtype=dtype)
        w_t = conv.W.reshape(fn, -1).T

        def multiply(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                np.matmul(w_t, d[:, k], out=dcol[:, k])

        _threads.run(multiply, self._parts(windows, threads))
        dcol = dcol.reshape(c, fh, fw, ph, pw, n, qh, qw)
        pad, s = conv.pad, conv.stride
        img = np.zeros((c, n, x_shape[2] + 2 * pad, x_shape[3] + 2 * pad), dtype=dtype)
        step_h, step_w = s * ph, s * pw

        def fold(lo: int, hi: int) -> None:  # input channels lo..hi-1
            for a in range(fh):
                for b in range(fw):
                    for p in range(ph):
                        for q in range(pw):
                            top, left = s * p + a, s * q + b
                            target = img[lo:hi, :, top:top + step_h * (qh - 1) + 1:step_h,
                                         left:left + step_w * (qw - 1) + 1:step_w]
                            target += dcol[lo:hi, a, b, p, q]

        _threads.run(fold, self._parts(c, threads))
        return img[:, :, pad:pad + x_shape[2], pad:pad + x_shape[3]].transpose(1, 0, 2, 3)
