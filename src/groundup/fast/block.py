"""Convolution → ReLU → max pooling over non-overlapping windows, computed as one block.

The compiled model runs :class:`ConvReluPool` in place of the three layers (in either order
of ReLU and pooling); the layers keep their parameters and receive ``dW``/``db`` as if they
had run alone. The im2col columns are ordered (window offset, n, i, j) instead of (n, oh, ow),
so the product W_col · col holds one contiguous (FN, N·QH·QW) block per window offset and
pooling is a running maximum over those blocks (the first maximum wins ties, as argmax
picks it). The bias is added after pooling, to the pooled map only: max(y) + b equals
max(y + b) exactly because rounding is monotone. Backward scatters dout into the winning
blocks, so dW = D · colᵀ is one product per window offset, and db is a sum over the pooled
map. Results equal the layer-by-layer ones up to the rounding of the reordered sums in y,
dW, db and dx.

Inside ``threads.own_threads()`` the work is split over groundup's threads: forward by
chunks of samples cut at fixed places, backward by output channels (ReLU mask, db), window
offsets (dW, dx products) and input channels (dx fold). Sums are taken in a fixed order, so
results do not depend on the thread count. Buffers are kept across training calls and never
handed out, except the output when ``reuse_output`` is set (when another layer consumes the
output within the same step). Inputs the block does not tile (a pooled size that does not
divide the convolution's output) run the three layers one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from groundup import conv as core
from groundup import layers
from groundup._checks import value_error
from groundup.fast import threads
from groundup.fast.trace import record

# The forward cuts the batch into chunks of at least this many samples, spread over the
# threads (fewer, larger chunks run faster; a fixed cut keeps results thread-independent).
CHUNK_SAMPLES = 50


def fusable(conv: Any, relu: Any, pool: Any) -> bool:
    """Whether three consecutive layers (ReLU and pooling in either order) form a block."""
    if type(relu) is core.Pooling and type(pool) is layers.Relu:
        relu, pool = pool, relu
    return (type(conv) is core.Convolution and type(relu) is layers.Relu
            and type(pool) is core.Pooling and pool.mode == "max" and pool.pad == 0
            and pool.stride == pool.pool_h == pool.pool_w)


def _parts(size: int, n: int) -> list[tuple[int, int]]:
    return threads.bounds(size, max(1, min(n, size)))


class ConvReluPool:
    """The three layers as one computation (see the module docstring)."""

    def __init__(self, conv: core.Convolution, relu: layers.Relu, pool: core.Pooling,
                 steps: tuple[Any, Any, Any]) -> None:
        self.conv, self.relu, self.pool = conv, relu, pool
        self.steps = steps  # the three layers' own steps, for inputs the block does not tile
        self.reuse_output = False
        self._buffers: dict[str, np.ndarray] = {}
        self._split: bool | None = None  # None: no forward yet; True: layer by layer

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any,
                keep: bool = True) -> np.ndarray:
        if not keep:  # evaluation batches (often larger) leave the training buffers alone
            return np.empty(shape, dtype=dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        conv, pool = self.conv, self.pool
        out_h, out_w = conv.output_hw(x)
        ph, pw = pool.pool_h, pool.pool_w
        self._split = out_h % ph != 0 or out_w % pw != 0
        if self._split:
            for step in self.steps:
                x = step.forward(x, train_flg)
            return x
        record("conv_relu_pool.forward")
        fn, c, fh, fw = conv.W.shape
        n, s = x.shape[0], conv.stride
        qh, qw = out_h // ph, out_w // pw
        windows, m = ph * pw, n * qh * qw
        dtype = np.result_type(x.dtype, conv.W.dtype)
        xp = core.pad_images(x, conv.pad)
        sn, sc, sh, sw = xp.strides
        # view[p, q, c, a, b, n, i, j] = xp[n, c, s·(ph·i + p) + a, s·(pw·j + q) + b]: a
        # read-only view of valid memory (the last index is s·(OH - 1) + FH - 1 < H')
        view = as_strided(xp, shape=(ph, pw, c, fh, fw, n, qh, qw),
                          strides=(s * sh, s * sw, sc, sh, sw, sn, s * ph * sh, s * pw * sw),
                          writeable=False)
        if self.reuse_output:
            out = self._buffer("out", (n, fn, qh, qw), dtype, train_flg)
        else:
            out = np.empty((n, fn, qh, qw), dtype=dtype)  # the (N, C, H, W) order Affine wants
        # col rows (c, a, b), columns (window offset, n, i, j)
        work = {"view": view, "out_t": out.transpose(1, 0, 2, 3),
                "col": self._buffer("col", (c * fh * fw, windows, m), dtype, train_flg),
                "y": self._buffer("y", (fn, windows, m), dtype, train_flg),
                "pooled": self._buffer("pooled", (fn, m), dtype, train_flg)}
        work.update(col8=work["col"].reshape(c, fh, fw, ph, pw, n, qh, qw), per_sample=qh * qw)
        if train_flg:
            index = np.uint8 if windows <= 256 else np.intp
            work.update(arg=self._buffer("arg", (fn, m), index),
                        greater=self._buffer("greater", (fn, m), bool),
                        moved=self._buffer("moved", (fn, m), index),
                        mask=self._buffer("mask", (fn, n, qh, qw), bool))
        # the products are cut at fixed samples: how a BLAS rounds can depend on where a
        # product's columns are cut, and results must not depend on the thread count
        chunks = _parts(n, max(1, n // CHUNK_SAMPLES))

        def run(first: int, stop: int) -> None:  # chunks first..stop-1, start to end
            for lo, hi in chunks[first:stop]:
                self.chunk(work, lo, hi, train_flg)

        threads.run(run, _parts(len(chunks), threads.splitting()))
        # the layers' own state would be stale: their backward must not run on it
        conv.x_shape, conv.out_hw, conv.col = x.shape, (out_h, out_w), None
        self.relu.mask = pool.x_shape = None
        if train_flg:
            self._work = work
            self._geometry = (x.shape, out_h, out_w)
        return out

    def chunk(self, work: dict[str, Any], lo: int, hi: int, train_flg: bool) -> None:
        """Samples lo..hi-1: unfold, one product per window offset, then pool."""
        pw = self.pool.pool_w
        col, col8, y, view = work["col"], work["col8"], work["y"], work["view"]
        cols = slice(lo * work["per_sample"], hi * work["per_sample"])
        w_col = self.conv.W.reshape(self.conv.W.shape[0], -1)
        for k in range(y.shape[1]):
            p, q = divmod(k, pw)
            np.copyto(col8[:, :, :, p, q, lo:hi], view[p, q, :, :, :, lo:hi])
            np.matmul(w_col, col[:, k, cols], out=y[:, k, cols])
        self._pool(work, cols, slice(lo, hi), train_flg)

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
            for step in reversed(self.steps):
                dout = step.backward(dout)
            return dout
        record("conv_relu_pool.backward")
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
        n_threads = threads.splitting()
        dpool = self._buffer("dpool", (fn, n, qh, qw), dtype)
        db = np.empty(fn, dtype=dtype)
        dout_t, mask = dout.transpose(1, 0, 2, 3), work["mask"]

        def relu_grad(lo: int, hi: int) -> None:  # output channels lo..hi-1
            np.multiply(dout_t[lo:hi], mask[lo:hi], out=dpool[lo:hi])
            db[lo:hi] = dpool[lo:hi].reshape(hi - lo, -1).sum(axis=1)

        threads.run(relu_grad, _parts(fn, n_threads))
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

        threads.run(scatter_and_multiply, _parts(windows, n_threads))
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

        threads.run(multiply, _parts(windows, n_threads))
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

        threads.run(fold, _parts(c, n_threads))
        return img[:, :, pad:pad + x_shape[2], pad:pad + x_shape[3]].transpose(1, 0, 2, 3)
