"""The compiled model against the reference model, end to end (the engine's contract suite).

Every net runs one training step (loss, every gradient, batch-norm running statistics after
it), a training-mode forward and an evaluation pass, at batch 1, 7, 100 and 256, in float32
and float64, on 1, 2 and 3 threads, compiled and not; each case asserts exactly which fast
pieces ran. Bounds and the Report: ``fast_helpers``.

What is bit-equal here and why:
- the dense net's training forward (its fast layers perform the reference's operations in
  the same order) and its batch-norm statistics;
- the conv nets' forward passes: their data and weights are small multiples of powers of two
  (``dyadic``), so every sum up to the last hidden layer is exact in float32, whatever its
  order. Both paths then see the same values, ties included, and send every gradient
  through the same ReLU and max-pool elements (checked: the float32 activations equal the
  float64 ones). Their backward sums are reordered, so gradients are compared within
  BOUND(L, M) with L = ``path_length`` and M = ``grad_magnitudes``.
Reordered sums elsewhere: the loss (the softmax sums over K classes and N samples,
L = K + N + 3, M = 1 + |loss| + 2·max|scores|) and the dense net's evaluation scores (batch
norm as one scale and shift, L = ``path_length``, M = |h|·|W| + |b| of the last layer).
"""

from __future__ import annotations

import numpy as np
import pytest

from fast_helpers import (
    Report,
    bound,
    dyadic,
    grad_magnitudes,
    path_length,
    reference_pass,
    restore,
    score_magnitude,
    snapshot,
)
from groundup import fast
from groundup.fast import _numba, threads
from groundup.fast import layers as fast_layers
from groundup.fast.trace import tracing
from groundup.models import DeepConvNet, MultiLayerNetExtend, Sequential, SimpleConvNet

BATCHES = (1, 7, 100, 256)
THREADS = (1, 2, 3)


def _mlp(dtype, rng):
    model = MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True, use_dropout=True,
                                dropout_ration=0.2, weight_decay_lambda=0.01, rng=3,
                                dtype=dtype)
    for name, p in model.params.items():  # nothing at its initial 0 or 1
        if not name.startswith("W"):
            p += (0.1 * rng.standard_normal(p.shape)).astype(dtype)
    for name, s in model.state.items():
        s[...] = 0.1 * rng.standard_normal(s.shape) + (1.0 if "var" in name else 0.0)
    return model


def _make_dyadic(model, rng, conv=(1, 8), hidden=(2, 64)):
    """Weights k/den with |k| <= kmax, the last Affine layer left as drawn (see the module
    docstring); every bias nonzero somewhere."""
    affines = [name for name in model.params if model.params[name].ndim == 2]
    for name, p in model.params.items():
        index = name.lstrip("Wb")
        layer_w = model.params["W" + index]
        if layer_w.ndim == 4:
            kmax, den = conv
        elif "W" + index != affines[-1]:
            kmax, den = hidden
        else:
            p[...] = 0.3 * rng.standard_normal(p.shape)
            continue
        p[...] = dyadic(rng, p.shape, -kmax, kmax, den, p.dtype)


def _conv_net(kind, dtype, rng):
    if kind == "simple_convnet":
        model = SimpleConvNet(weight_init_std="he_normal", rng=3, dtype=dtype)
        _make_dyadic(model, rng, conv=(2, 8))
    elif kind == "deep_convnet":
        model = DeepConvNet((1, 12, 12), *[{"filter_num": 4}] * 6, hidden_size=6,
                            output_size=3, rng=3, dtype=dtype)
        _make_dyadic(model, rng, conv=(1, 4), hidden=(1, 8))
    else:
        shape, conv, pool = {
            "not_tiled": ((2, 11, 11), {"kernel_size": 3}, {"size": 2}),  # 9x9: no block
            "avg_pool": ((2, 10, 10), {"kernel_size": 3, "pad": 1}, {"size": 2, "mode": "avg"}),
            "pad_stride": ((2, 13, 13), {"kernel_size": 3, "stride": 2, "pad": 1},
                           {"size": 3, "stride": 2, "pad": 1}),
        }[kind]
        model = (Sequential(shape, rng=3, dtype=dtype).add("conv", filters=4, **conv)
                 .add("relu").add("pool", **pool).add("dense", units=6).add("relu")
                 .add("dense", units=3))
        _make_dyadic(model, rng)
    return model


NETS = ("mlp_bn_dropout", "simple_convnet", "deep_convnet", "not_tiled", "avg_pool",
        "pad_stride")


def build(kind, dtype, batch):
    """A deterministic model, batch and labels for each net of the contract."""
    rng = np.random.default_rng(17)
    if kind == "mlp_bn_dropout":
        model = _mlp(dtype, rng)
        x = rng.random((batch, 784)).astype(dtype)
    else:
        model = _conv_net(kind, dtype, rng)
        x = dyadic(rng, (batch, *model.input_shape), 0, 4, 4, dtype)
    classes = model.output_shape[0]
    return model, x, np.arange(batch) % classes


def expected(kind, batch, n_threads, train):
    """The fast pieces a step (``train``) or an evaluation pass of each net runs."""
    # class labels take the numba softmax when the kernels are on (both: test_fast_layers)
    softmax = "softmax.numba" if _numba.kernels() is not None else "softmax.fast"
    common = {"affine.fast", "relu.fast"} | ({softmax} if train else set())
    pieces = {
        "mlp_bn_dropout": {"check.deferred", "bn.fast"} | ({"dropout.fast"} if train else set()),
        "simple_convnet": {"conv_relu_pool.forward"},
        "deep_convnet": {"conv.cnhw", "conv_relu_pool.forward"}
        | ({"dropout.fast"} if train else set()),
        "not_tiled": {"conv.cnhw"},  # 9x9 does not tile: conv, ReLU and pooling one by one
        "avg_pool": {"conv.cnhw", "pool.tiled"},
        "pad_stride": {"conv.cnhw", "relu_pool.swap"},
    }[kind] | common
    if train and "conv_relu_pool.forward" in pieces:
        pieces.add("conv_relu_pool.backward")
    # SimpleConvNet's hidden layer (4320 x 100) is split when it has enough work per thread
    splits = (kind == "simple_convnet" and n_threads > 1 and bool(threads._blas_libs())
              and batch * 4320 * 100 >= n_threads * fast_layers.MIN_SPLIT_MACS)
    return pieces | ({"affine.split"} if splits else set())


def softmax_loss_bound(loss, scores, dtype):
    n, k = scores.shape
    return bound(k + n + 3, 1 + abs(loss) + 2 * float(np.abs(scores).max(initial=0)), dtype)


def run_case(kind, dtype, batch, thread_counts=THREADS):
    """Reports of the compiled ``kind`` net against its reference, one per thread count."""
    model, x, t = build(kind, dtype, batch)
    saved = snapshot(model)
    ref = reference_pass(model, x, t)  # one training step of the reference path
    magnitudes = grad_magnitudes(model, ref)
    state_after = {k: v.copy() for k, v in model.state.items()}
    restore(model, saved)
    ref_eval = reference_pass(model, x, train_flg=False)
    ref_eval_loss = model.loss(x, t)
    length = path_length(model, batch)
    dense = kind == "mlp_bn_dropout"
    with tracing() as ran:
        compiled = fast.compile(model)
    reports = []
    before = threads.get_num_threads()
    try:
        for n in thread_counts:
            threads.set_num_threads(n)
            report = Report(f"{kind} {np.dtype(dtype).name} N={batch} threads={n}: ")
            report.ran("compile", ran, {"pack"})
            restore(model, saved)
            with tracing() as step:
                grads = compiled.gradient(x, t)
            report.ran("gradient", step, expected(kind, batch, n, train=True))
            report.close("loss", compiled.last_loss, ref["loss"],
                         softmax_loss_bound(ref["loss"], ref["scores"], dtype))
            for name, g in grads.items():
                report.close("d" + name, g, ref["grads"][name],
                             bound(length, magnitudes[name], dtype))
            for name, s in model.state.items():
                report.equal(name + " after a step", s, state_after[name])
            restore(model, saved)
            report.equal("scores (training)", compiled.predict(x, train_flg=True), ref["scores"])
            restore(model, saved)
            with tracing() as evaluation:
                scores = compiled.predict(x)
            report.ran("predict", evaluation, expected(kind, batch, n, train=False))
            if dense:  # batch norm's evaluation as one scale and one shift
                report.close("scores", scores, ref_eval["scores"],
                             bound(length, score_magnitude(model, ref_eval), dtype))
            else:
                report.equal("scores", scores, ref_eval["scores"])
            loss = compiled.last_layer.forward(scores, t) + compiled.regularization_loss()
            report.close("loss (evaluation)", loss, ref_eval_loss,
                         softmax_loss_bound(ref_eval_loss, ref_eval["scores"], dtype)
                         + 2 * np.max(bound(length, score_magnitude(model, ref_eval), dtype)
                                      if dense else 0))
            reports.append(report)
    finally:
        threads.set_num_threads(before)
    return reports


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", NETS)
def test_compiled_model_matches_the_reference(kind, dtype, batch):
    for report in run_case(kind, dtype, batch):
        report.check()


@pytest.mark.parametrize("kind", [k for k in NETS if k != "mlp_bn_dropout"])
def test_conv_data_make_every_forward_sum_exact(kind):
    """What lets the conv cases compare their forward passes bit for bit."""
    taps = []
    for dtype in (np.float32, np.float64):
        model, x, _ = build(kind, dtype, 100)
        ref = reference_pass(model, x, train_flg=False)
        last = list(model.layers)[-1 if kind != "deep_convnet" else -2]
        taps.append(ref["inputs"][last])
    assert np.array_equal(taps[0], taps[1].astype(np.float32))
    assert np.abs(taps[1]).max() > 0


def test_the_reference_pass_of_the_tests_is_the_models_gradient():
    model, x, t = build("mlp_bn_dropout", np.float64, 7)
    saved = snapshot(model)
    ref = reference_pass(model, x, t)
    restore(model, saved)
    grads = model.gradient(x, t)
    assert model.last_loss == ref["loss"]
    for name, g in grads.items():
        assert np.array_equal(g, ref["grads"][name]), name


@pytest.mark.parametrize("kind", ["mlp_bn_dropout", "simple_convnet"])
def test_compiled_and_reference_accuracy_agree(kind):
    model, x, t = build(kind, np.float32, 100)
    want = model.accuracy(x, t, batch_size=30)
    compiled = fast.compile(model)
    assert compiled.accuracy(x, t, batch_size=30) == want
    assert compiled.accuracy(x, np.eye(model.output_shape[0])[t]) == want
