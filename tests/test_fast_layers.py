"""The dense layers' fast counterparts against the reference layers, on identical inputs.

Bounds: ``fast_helpers`` (BOUND(L, M) = 2 · L · eps · M). Bit-equal: Relu, Dropout (mask,
draws, output, dx), batch norm in training (output, running statistics, every gradient), an
Affine layer that is not split. Within BOUND: a split Affine layer (forward L = D + 1,
dW L = N, dx L = M), batch norm's evaluation (L = 4 roundings per element,
M = (|x| + |μ|)·|γ|/√(σ² + eps) + |β|), the softmax loss (L = K + N + 3,
M = 1 + |loss| + 2·max|x|) and its dx (L = K + 3, M = (y + onehot(t)) / N), with the
NumPy passes and with the numba kernels (libm's exp and log, each within an ulp or so).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fast_helpers import Report, bound
from groundup import layers
from groundup.fast import layers as fast_layers
from groundup.fast import threads
from groundup.fast.trace import tracing

BATCHES = (1, 7, 100, 256)
DTYPES = (np.float32, np.float64)
THREADS = (1, 2, 3)
HAS_NUMBA = importlib.util.find_spec("numba") is not None


def _split_expected(batch, shape, n_threads):
    return (n_threads > 1 and bool(threads._blas_libs())
            and batch * shape[0] * shape[1] >= n_threads * fast_layers.MIN_SPLIT_MACS)


def affine_case(dtype, batch, n_threads, shape=(4320, 100), first=False) -> Report:
    """A fast Affine layer (inside ``own_threads()``) against the reference on the same data."""
    rng = np.random.default_rng(batch)
    d, m = shape
    W = (rng.standard_normal(shape) / np.sqrt(d)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)  # of the size of x · W: a dropped bias shows
    x = rng.standard_normal((batch, 30, 12, 12) if d == 4320 else (batch, d)).astype(dtype)
    dout = rng.standard_normal((batch, m)).astype(dtype)
    ref = layers.Affine(W, b)
    ref.needs_input_grad = not first
    out_ref, dx_ref = ref.forward(x), ref.backward(dout)
    layer = layers.Affine(W.copy(), b.copy())
    layer.needs_input_grad = not first
    piece = fast_layers.Affine(layer)
    report = Report(f"Affine{shape} {np.dtype(dtype).name} N={batch} threads={n_threads}: ")
    before = threads.get_num_threads()
    threads.set_num_threads(n_threads)
    try:
        with threads.own_threads(), tracing() as ran:
            out = piece.forward(x)
            dx = piece.backward(dout)
    finally:
        threads.set_num_threads(before)
    split = _split_expected(batch, shape, n_threads)
    report.ran("pieces", ran, {"affine.fast"} | ({"affine.split"} if split else set()))
    report.equal("db", layer.db, ref.db)  # the same sum in both
    if not split:
        report.equal("out", out, out_ref)
        report.equal("dW", layer.dW, ref.dW)
        report.equal("dx", dx, dx_ref)
        return report
    x2, a = np.abs(x.reshape(batch, d).astype(np.float64)), np.abs(W.astype(np.float64))
    g = np.abs(dout.astype(np.float64))
    report.close("out", out, out_ref, bound(d + 1, x2 @ a + np.abs(b), dtype))
    report.close("dW", layer.dW, ref.dW, bound(batch, x2.T @ g, dtype))
    if first:
        report.equal("dx", dx, dx_ref)
    else:
        report.close("dx", dx, dx_ref, bound(m, (g @ a.T).reshape(x.shape), dtype))
    return report


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_matches_the_reference(dtype, batch, n_threads):
    affine_case(dtype, batch, n_threads).check()  # SimpleConvNet's hidden layer: split
    affine_case(dtype, batch, n_threads, (784, 100), first=True).check()  # a first layer
    affine_case(dtype, batch, n_threads, (100, 10)).check()


def test_affine_splits_only_inside_own_threads():
    layer = fast_layers.Affine(layers.Affine(np.zeros((4320, 100)), np.zeros(100)))
    assert layer.split(256) == 1
    before = threads.get_num_threads()
    threads.set_num_threads(2)
    try:
        with threads.own_threads():
            assert layer.split(256) == (2 if threads._blas_libs() else 1)
            assert layer.split(1) == 1  # too little work per thread
    finally:
        threads.set_num_threads(before)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_the_reference_and_keeps_no_mask_in_evaluation(dtype, batch):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 30, 4, 4)).astype(dtype)
    x[:, 0] = 0  # the kink itself
    dout = rng.standard_normal(x.shape).astype(dtype)
    ref = layers.Relu()
    out_ref, dx_ref = ref.forward(x), ref.backward(dout)
    piece = fast_layers.Relu(layers.Relu())
    with tracing() as ran:
        out, dx = piece.forward(x), piece.backward(dout)
    report = Report()
    report.ran("pieces", ran, {"relu.fast"})
    report.equal("out", out, out_ref)
    report.equal("dx", dx, dx_ref)
    report.check()
    assert np.array_equal(piece.forward(x, train_flg=False), out_ref)
    assert piece.mask is None
    with pytest.raises(RuntimeError, match="Relu: backward called before forward"):
        piece.backward(dout)


def test_relu_backward_keeps_the_input_memory_order_and_values():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5, 6)).astype(np.float32).transpose(1, 0, 2, 3)
    relu = fast_layers.Relu(layers.Relu())
    relu.forward(x)
    dout = rng.standard_normal(x.shape).astype(np.float32)  # C order, unlike x
    dx = relu.backward(dout)
    assert dx.strides == x.strides and dx.dtype == np.float32
    assert np.array_equal(dx, np.where(x > 0, dout, np.float32(0)))


@pytest.mark.parametrize("inverted", [True, False])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_draws_the_same_masks_as_the_reference(dtype, batch, inverted):
    rng = np.random.default_rng(batch)
    ref = layers.Dropout(0.2, inverted=inverted, rng=np.random.default_rng(9))
    piece = fast_layers.Dropout(layers.Dropout(0.2, inverted=inverted,
                                               rng=np.random.default_rng(9)))
    report = Report()
    for step in range(3):  # the kept buffers are refilled, never stale
        x = rng.standard_normal((batch, 100)).astype(dtype)
        dout = rng.standard_normal(x.shape).astype(dtype)
        with tracing() as ran:
            out, dx = piece.forward(x), piece.backward(dout)
        report.ran(f"pieces {step}", ran, {"dropout.fast"})
        report.equal(f"out {step}", out, ref.forward(x))
        report.equal(f"mask {step}", piece.layer.mask, ref.mask)
        report.equal(f"dx {step}", dx, ref.backward(dout))
        report.equal(f"evaluation {step}", piece.forward(x, False), ref.forward(x, False))
    assert piece.layer.rng.bit_generator.state == ref.rng.bit_generator.state
    report.check()


def test_dropout_holds_its_mask_like_the_reference():
    x = np.ones((5, 8))
    piece = fast_layers.Dropout(layers.Dropout(0.5, rng=np.random.default_rng(0)))
    first = piece.forward(x).copy()
    piece.layer.hold_mask = True
    assert np.array_equal(piece.forward(x), first)
    piece.layer.hold_mask = False
    assert not np.array_equal(piece.forward(x), first)


def _batchnorm(dtype, dim, unbiased):
    rng = np.random.default_rng(dim)
    gamma = (1 + 0.1 * rng.standard_normal(dim)).astype(dtype)
    beta = (0.1 * rng.standard_normal(dim)).astype(dtype)
    mean = (0.1 * rng.standard_normal(dim)).astype(dtype)
    var = (1 + rng.random(dim)).astype(dtype)
    return layers.BatchNormalization(gamma, beta, 0.9, mean, var, eps=1e-5,
                                     unbiased_running_var=unbiased)


def _copy(bn):
    return layers.BatchNormalization(bn.gamma.copy(), bn.beta.copy(), bn.momentum,
                                     bn.running_mean.copy(), bn.running_var.copy(), eps=bn.eps,
                                     unbiased_running_var=bn.unbiased_running_var)


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_matches_the_reference(dtype, batch, conv):
    rng = np.random.default_rng(batch)
    shape = (batch, 6, 5, 4) if conv else (batch, 100)
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    if conv:  # in (C, N, H, W) memory order, as a fast convolution below hands it over
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    ref = _batchnorm(dtype, shape[1], unbiased=batch % 2 == 0)
    piece = fast_layers.BatchNormalization(_copy(ref))
    report = Report()
    with tracing() as ran:
        out, dx = piece.forward(x), piece.backward(dout)
    report.ran("pieces", ran, {"bn.fast"})
    report.equal("out", out, ref.forward(x))
    report.equal("dx", dx, ref.backward(dout))
    for name in ("dgamma", "dbeta", "running_mean", "running_var"):
        report.equal(name, getattr(piece.layer, name), getattr(ref, name))
    bn = piece.layer
    std = np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    x2 = np.abs(bn.to_2d(x).astype(np.float64))
    magnitude = (x2 + np.abs(bn.running_mean)) * np.abs(bn.gamma) / std + np.abs(bn.beta)
    report.close("evaluation", piece.forward(x, False), ref.forward(x, False),
                 bn.from_2d(bound(4, magnitude, dtype)))
    report.check()


def test_batchnorm_errors_are_the_layers():
    piece = fast_layers.BatchNormalization(_batchnorm(np.float32, 3, False))
    with pytest.raises(ValueError, match="batch size must be at least 1 in training"):
        piece.forward(np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="x.shape must be 3 features"):
        piece.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(RuntimeError, match="backward called before a training forward"):
        fast_layers.BatchNormalization(_batchnorm(np.float32, 3, False)).backward(np.zeros((2, 3)))


def softmax_case(dtype, batch, one_hot, numba, monkeypatch) -> Report:
    """The fast softmax loss (NumPy or, for class labels, numba) against the reference."""
    monkeypatch.setenv("GROUNDUP_NUMBA", "1" if numba else "0")
    rng = np.random.default_rng(batch)
    k = 10
    x = (3 * rng.standard_normal((batch, k))).astype(dtype)
    labels = rng.integers(0, k, batch)
    t = np.eye(k)[labels] if one_hot else labels
    ref = layers.SoftmaxWithLoss()
    loss_ref = ref.forward(x, t)
    dx_ref = ref.backward(1)
    piece = fast_layers.SoftmaxWithLoss(layers.SoftmaxWithLoss())
    with tracing() as ran:
        loss = piece.forward(x, t)
    dx = piece.backward(1)
    report = Report()
    report.ran("pieces", ran, {"softmax.numba" if numba and not one_hot else "softmax.fast"})
    report.close("loss", loss, loss_ref,
                 bound(k + batch + 3, 1 + abs(loss_ref) + 2 * np.abs(x).max(), dtype))
    report.close("dx", dx, dx_ref, bound(k + 3, (ref.y + np.eye(k)[labels]) / batch, dtype))
    report.close("y", piece.y, ref.y, bound(k + 3, ref.y, dtype))
    report.close("dx (dout=3)", piece.backward(3), ref.backward(3),
                 bound(k + 3, 3 * (ref.y + np.eye(k)[labels]) / batch, dtype))
    report.equal("dtype", np.zeros(0, dx.dtype), np.zeros(0, dtype))
    return report


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_matches_the_reference(dtype, batch, one_hot, numba, monkeypatch):
    if numba and not HAS_NUMBA:
        pytest.skip("numba is not installed")
    softmax_case(dtype, batch, one_hot, numba, monkeypatch).check()


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
def test_softmax_loss_errors_are_the_layers(numba, monkeypatch):
    if numba and not HAS_NUMBA:
        pytest.skip("numba is not installed")
    monkeypatch.setenv("GROUNDUP_NUMBA", "1" if numba else "0")
    x = np.zeros((3, 4), dtype=np.float32)
    for t, message in ((np.array([0, 4, 1]), r"class labels in \[0, 3\]"),
                       (np.array([0, -1, 1]), r"class labels in \[0, 3\]"),
                       (np.array([0, 1]), "len\\(t\\) must be equal to the batch size 3")):
        for layer in (layers.SoftmaxWithLoss(),
                      fast_layers.SoftmaxWithLoss(layers.SoftmaxWithLoss())):
            with pytest.raises(ValueError, match=message):
                layer.forward(x, t)
