"""The convolution pieces of the engine against the reference layers, on identical inputs.

Bounds: ``fast_helpers`` (BOUND(L, M) = 2 · L · eps · M, M computed by the reference layer
itself on |x|, |W|, |b|, |dout| in float64):
- the (C, N, H, W) convolution and the ConvReluPool block reorder the sums of the product
  (L = C·FH·FW + 1), of dW and db (L = N·OH·OW) and of dx (L = FN·FH·FW);
- the block's output is the pooled product: max and ReLU are 1-Lipschitz, so its bound is
  the largest bound of its window plus the rounding of the bias added after pooling
  (2·eps·|out|);
- tiled max pooling and the ReLU ↔ max-pool swap are bit-equal, ties included; tiled
  average pooling sums a window in the reference's order (L = PH·PW + 1).
A max pool after a reordered sum may pick another element where two values of a window, or
a value and ReLU's kink, are closer than the bound: the block tests put no gradient on such
windows (``unambiguous``), except where the values are exact (a zero filter: exact ties,
which both sides send to the first element).
"""

from __future__ import annotations

import numpy as np
import pytest

from fast_helpers import Report, bound, eps
from groundup import conv, layers
from groundup.fast import conv as fast_conv
from groundup.fast import threads
from groundup.fast.block import ConvReluPool
from groundup.fast.trace import tracing

BATCHES = (1, 7, 100, 256)
DTYPES = (np.float32, np.float64)


def _abs_conv(W, b, stride, pad, x, dout=None):
    """The reference convolution on absolute values in float64: M of its sums."""
    layer = conv.Convolution(np.abs(W).astype(np.float64), np.abs(b).astype(np.float64),
                             stride, pad)
    out = layer.forward(np.abs(x).astype(np.float64))
    dx = None if dout is None else layer.backward(np.abs(dout).astype(np.float64))
    return out, layer, dx


CONVS = {  # (C, H, W, FN, FH, FW, stride, pad)
    "simple_convnet": (1, 28, 28, 30, 5, 5, 1, 0),
    "deep_convnet": (4, 12, 12, 4, 3, 3, 1, 1),
    "stride_pad": (2, 9, 8, 3, 3, 2, 2, 1),
}


def conv_case(dtype, batch, geometry, first=False) -> Report:
    c, h, w, fn, fh, fw, stride, pad = CONVS[geometry]
    rng = np.random.default_rng(batch)
    W = (rng.standard_normal((fn, c, fh, fw)) / np.sqrt(c * fh * fw)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)
    ref = conv.Convolution(W, b, stride, pad)
    ref.needs_input_grad = not first
    out_ref = ref.forward(x)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dx_ref = ref.backward(dout)
    layer = conv.Convolution(W.copy(), b.copy(), stride, pad)
    layer.needs_input_grad = not first
    piece = fast_conv.Convolution(layer)
    with tracing() as ran:
        out = piece.forward(x)
        dx = piece.backward(dout)
    m_out, m_layer, m_dx = _abs_conv(W, b, stride, pad, x, dout)
    oh, ow = out.shape[2:]
    report = Report(f"conv {geometry} {np.dtype(dtype).name} N={batch}: ")
    report.ran("pieces", ran, {"conv.cnhw"})
    report.close("out", out, out_ref, bound(c * fh * fw + 1, m_out, dtype))
    report.close("dW", layer.dW, ref.dW, bound(batch * oh * ow, m_layer.dW, dtype))
    report.close("db", layer.db, ref.db, bound(batch * oh * ow, m_layer.db, dtype))
    if first:
        report.equal("dx", dx is None, dx_ref is None)
    else:
        report.close("dx", dx, dx_ref, bound(fn * fh * fw, m_dx, dtype))
    return report


@pytest.mark.parametrize("geometry", list(CONVS))
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cnhw_convolution_matches_the_reference(dtype, batch, geometry):
    conv_case(dtype, batch, geometry).check()
    conv_case(dtype, batch, geometry, first=True).check()


def test_cnhw_convolution_output_is_channel_major_and_any_dout_layout_works():
    rng = np.random.default_rng(6)
    layer = conv.Convolution(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3))
    piece = fast_conv.Convolution(layer)
    out = piece.forward(rng.normal(size=(2, 2, 5, 5)))
    assert out.transpose(1, 0, 2, 3).flags.c_contiguous
    dout = rng.normal(size=out.shape)
    dx_c, dw_c = piece.backward(dout), layer.dW.copy()
    dx_f = piece.backward(np.asfortranarray(dout))
    np.testing.assert_allclose(dx_f, dx_c, rtol=1e-12)
    np.testing.assert_allclose(layer.dW, dw_c, rtol=1e-12)


def test_cnhw_convolution_reuses_its_column_buffer_without_changing_results():
    rng = np.random.default_rng(3)
    piece = fast_conv.Convolution(conv.Convolution(rng.standard_normal((2, 3, 3, 3)),
                                                   np.zeros(2), pad=1))
    x1, x2 = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 5, 5))
    piece.forward(x1)
    kept = piece.col_t
    out2 = piece.forward(x2)
    assert np.shares_memory(piece.col_t, kept)
    np.testing.assert_array_equal(piece.col_t, conv.im2col(x2, 3, 3, 1, 1).T)
    np.testing.assert_array_equal(out2, fast_conv.Convolution(
        conv.Convolution(piece.layer.W, piece.layer.b, pad=1)).forward(x2))


POOLS = {  # (C, H, W, size, mode): windows that tile the input
    "max_2": (30, 24, 24, 2, "max"),
    "max_3": (3, 9, 6, 3, "max"),
    "avg_2": (4, 10, 10, 2, "avg"),
    "avg_3": (3, 9, 9, 3, "avg"),
}


@pytest.mark.parametrize("name", list(POOLS))
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_pooling_matches_the_reference(dtype, batch, name):
    c, h, w, size, mode = POOLS[name]
    rng = np.random.default_rng(batch)
    x = rng.integers(-2, 3, size=(batch, c, h, w)).astype(dtype)  # ties in most windows
    x[:, 0] += rng.standard_normal((batch, h, w)).astype(dtype)  # and none in channel 0
    ref = conv.Pooling(size, size, size, mode=mode)
    out_ref = ref.forward(x)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dx_ref = ref.backward(dout)
    piece = fast_conv.Pooling(conv.Pooling(size, size, size, mode=mode))
    with tracing() as ran:
        out = piece.forward(x)
        dx = piece.backward(dout)
    report = Report(f"pool {name} {np.dtype(dtype).name} N={batch}: ")
    report.ran("pieces", ran, {"pool.tiled"})
    if mode == "max":
        report.equal("out", out, out_ref)
        report.equal("dx", dx, dx_ref)
    else:
        windows = np.abs(x.astype(np.float64)).reshape(batch, c, h // size, size, w // size, size)
        report.close("out", out, out_ref,
                     bound(size * size + 1, windows.mean(axis=(3, 5)), dtype))
        report.close("dx", dx, dx_ref, bound(1, np.abs(dx_ref), dtype))
    report.check()


def test_tiled_pooling_dx_keeps_the_input_memory_order_and_never_aliases_results():
    rng = np.random.default_rng(2)
    x = np.ascontiguousarray(rng.standard_normal((3, 2, 4, 4)).transpose(1, 0, 2, 3))
    x = x.transpose(1, 0, 2, 3)  # (C, N, H, W) memory order, as a fast convolution gives
    piece = fast_conv.Pooling(conv.Pooling(2, 2, 2))
    out = piece.forward(x)
    dx1 = piece.backward(np.ones_like(out))
    assert dx1.strides == x.strides
    piece.forward(-x)
    dx2 = piece.backward(np.ones_like(out))
    assert dx2 is dx1  # kept: the model hands dx to the layer below at once
    ref = conv.Pooling(2, 2, 2)
    ref.forward(-x)
    np.testing.assert_array_equal(dx2, ref.backward(np.ones_like(out)))


@pytest.mark.parametrize("pool", [(2, 1, 0), (3, 2, 1), (2, 2, 0)])  # (size, stride, pad)
@pytest.mark.parametrize("dtype", DTYPES)
def test_geometries_that_do_not_tile_run_the_layers_code(dtype, pool):
    size, stride, pad = pool
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(dtype)
    piece = fast_conv.Pooling(conv.Pooling(size, size, stride, pad))
    with tracing() as ran:
        out = piece.forward(x)
    assert not ran and not piece.tiled
    np.testing.assert_array_equal(out, conv.Pooling(size, size, stride, pad).forward(x))


@pytest.mark.parametrize("pool", [(2, 2, 0), (3, 2, 1), (3, 1, 0)])  # (size, stride, pad)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_pool_swap_is_bit_equal_to_relu_then_pool(dtype, batch, pool):
    size, stride, pad = pool
    rng = np.random.default_rng(batch)
    x = rng.integers(-2, 3, size=(batch, 3, 8, 8)).astype(dtype)  # ties, zeros, negatives
    x[:, 0] = -np.abs(rng.standard_normal((batch, 8, 8)))  # windows below the kink
    relu, pool_layer = layers.Relu(), conv.Pooling(size, size, stride, pad)
    out_ref = pool_layer.forward(relu.forward(x))
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dx_ref = relu.backward(pool_layer.backward(dout))
    swap = fast_conv.ReluPoolSwap(layers.Relu(), conv.Pooling(size, size, stride, pad))
    with tracing() as ran:
        out = swap.forward(x)
        dx = swap.backward(dout)
    report = Report(f"swap {pool} {np.dtype(dtype).name} N={batch}: ")
    report.ran("pieces", ran, {"relu_pool.swap"})
    report.equal("out", out, out_ref)
    report.equal("dx", dx, dx_ref)
    report.check()


BLOCKS = {  # (C, H, W, FN, F, stride, pad, pool, ReLU before pooling)
    "simple_convnet": (1, 28, 28, 30, 5, 1, 0, 2, True),
    "pool_then_relu": (2, 8, 8, 4, 3, 1, 1, 2, False),
    "stride_2_pool_3": (2, 25, 25, 3, 3, 2, 0, 3, True),
}


def _windows(a, size):
    n, c, h, w = a.shape
    q_h, q_w = h // size, w // size
    a = a[:, :, :q_h * size, :q_w * size].reshape(n, c, q_h, size, q_w, size)
    return a.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, q_h, q_w, size * size)


def unambiguous(y, y_bound, y_magnitude, b, size, dtype):
    """Pooled positions whose winner and ReLU gate no reordering within the bound can
    change: the top two values of the window and the pooled value plus the bias are
    farther apart than the bound, or the window's values are exact (M = 0)."""
    top2 = np.sort(_windows(y, size), axis=-1)[..., -2:]
    limit = _windows(y_bound, size).max(axis=-1)
    gap = top2[..., 1] - top2[..., 0]
    b = b.reshape(1, -1, 1, 1).astype(np.float64)
    kink = np.abs(top2[..., 1] + b) - eps(dtype) * (np.abs(top2[..., 1]) + np.abs(b))
    exact = _windows(y_magnitude, size).max(axis=-1) == 0
    return exact | ((gap > 2 * limit) & (kink > 2 * limit))


def block_case(dtype, batch, n_threads, name) -> Report:
    """A ConvReluPool block (inside ``own_threads()``) against the three reference layers."""
    c, h, w, fn, f, stride, pad, size, relu_first = BLOCKS[name]
    rng = np.random.default_rng(batch)
    W = (rng.standard_normal((fn, c, f, f)) / np.sqrt(c * f * f)).astype(dtype)
    W[0] = 0  # exact ties in every window of filter 0 ...
    b = rng.standard_normal(fn).astype(dtype)
    b[0] = 0.5  # ... which pass the ReLU, so where a tie goes shows in dW
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)

    def three(W, b):
        return conv.Convolution(W, b, stride, pad), layers.Relu(), conv.Pooling(size, size, size)

    cv, relu, pool = three(W, b)
    order = (relu, pool) if relu_first else (pool, relu)
    out_ref = order[1].forward(order[0].forward(cv.forward(x)))
    y = conv.Convolution(W, np.zeros_like(b), stride, pad).forward(x).astype(np.float64)
    y_magnitude = _abs_conv(W, np.zeros_like(b), stride, pad, x)[0]
    y_bound = bound(c * f * f, y_magnitude, dtype)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dout *= unambiguous(y, y_bound, y_magnitude, b, size, dtype)
    dconv = order[0].backward(order[1].backward(dout))
    dx_ref = cv.backward(dconv)
    m_out, m_layer, m_dx = _abs_conv(W, b, stride, pad, x, dconv)

    cv2, relu2, pool2 = three(W.copy(), b.copy())
    steps = (cv2, relu2, pool2) if relu_first else (cv2, pool2, relu2)
    block = ConvReluPool(cv2, relu2, pool2, steps)
    before = threads.get_num_threads()
    threads.set_num_threads(n_threads)
    try:
        with threads.own_threads(), tracing() as ran:
            out = block.forward(x)
            dx = block.backward(dout)
    finally:
        threads.set_num_threads(before)
    oh, ow = y.shape[2:]
    report = Report(f"block {name} {np.dtype(dtype).name} N={batch} threads={n_threads}: ")
    report.ran("pieces", ran, {"conv_relu_pool.forward", "conv_relu_pool.backward"})
    out_bound = _windows(y_bound, size).max(axis=-1) + 2 * eps(dtype) * np.abs(out_ref)
    report.close("out", out, out_ref, out_bound)
    report.close("dW", cv2.dW, cv.dW, bound(batch * oh * ow, m_layer.dW, dtype))
    report.close("db", cv2.db, cv.db, bound(batch * oh * ow, m_layer.db, dtype))
    report.close("dx", dx, dx_ref, bound(fn * f * f, m_dx, dtype))
    report.equal("shape", out.shape, out_ref.shape)
    return report


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BLOCKS))
def test_conv_relu_pool_block_matches_the_layers(name, dtype, batch, n_threads):
    block_case(dtype, batch, n_threads, name).check()


def test_block_sends_exact_ties_to_the_first_element():
    """Filter 0 is zero: every window ties at b, and only the first element gets dW."""
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6))
    cv = conv.Convolution(np.zeros((1, 1, 3, 3)), np.full(1, 0.5))
    relu, pool = layers.Relu(), conv.Pooling(2, 2, 2)
    block = ConvReluPool(cv, relu, pool, (cv, relu, pool))
    out = block.forward(x)
    block.backward(np.ones_like(out))
    # the windows' first elements sit at even (i, j) of the 4x4 conv output
    want = np.array([[x[:, 0, p:p + 4:2, q:q + 4:2].sum() for q in range(3)]
                     for p in range(3)])
    np.testing.assert_allclose(cv.dW[0, 0], want, rtol=1e-12)
    np.testing.assert_array_equal(cv.db, [out.size])


def test_block_state_cannot_be_misused():
    cv, relu, pool = (conv.Convolution(np.ones((2, 1, 3, 3)), np.zeros(2)), layers.Relu(),
                      conv.Pooling(2, 2, 2))
    block = ConvReluPool(cv, relu, pool, (cv, relu, pool))
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    with pytest.raises(RuntimeError, match="ConvReluPool: backward called before forward"):
        block.backward(np.zeros((2, 2, 3, 3)))
    block.forward(x, train_flg=False)
    with pytest.raises(RuntimeError, match="Pooling: backward called before forward"):
        pool.backward(np.zeros((2, 2, 3, 3)))  # the layers' own state is not left stale
    block.forward(x)
    with pytest.raises(ValueError, match=r"dout\.shape must be \(2, 2, 3, 3\)"):
        block.backward(np.zeros((2, 2, 4, 3)))


def test_results_do_not_depend_on_the_thread_count():
    pytest.importorskip("threadpoolctl")
    from groundup import fast
    from groundup.models import DeepConvNet

    before = threads.get_num_threads()
    blas = [(lib, lib.num_threads) for lib in threads._blas_libs()]
    results = []
    try:
        for n in (2, 3, 4):
            threads.set_num_threads(n)
            for dtype in DTYPES:
                model = fast.compile(DeepConvNet((1, 12, 12), *[{"filter_num": 4}] * 6,
                                                 hidden_size=6, output_size=3, rng=2,
                                                 dtype=dtype))
                x = np.random.default_rng(0).random((120, 1, 12, 12)).astype(dtype)  # 2 chunks
                grads = model.gradient(x, np.arange(120) % 3)
                results.append((n, dtype, model.predict(x), dict(grads)))
    finally:
        threads.set_num_threads(before)
    for n, dtype, scores, grads in results[2:]:
        first = results[DTYPES.index(dtype)]
        assert np.array_equal(scores, first[2]), (n, dtype)
        for k in grads:
            assert np.array_equal(grads[k], first[3][k]), (n, dtype, k)
    assert [(lib, lib.num_threads) for lib, _ in blas] == blas  # the BLAS threads restored
