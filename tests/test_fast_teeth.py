"""The equivalence suite's teeth: each way of breaking the engine makes its checks fail.

Each test breaks one fast piece by monkeypatching it, reruns the suite's own cases
(``affine_case``, ``block_case``, ``run_case``) at the sizes where the piece runs, and
asserts that they fail: the numeric breaks by at least three orders of magnitude over
their bound in float64 (whose bounds are tightest; float32's bounds for sums of thousands of
terms are about 5·10⁸ times looser and are exceeded by less), a piece that did not run
through the trace check alone, the numbers being right.
"""

from __future__ import annotations

import numpy as np
import pytest

from groundup.fast import _numba, plan
from groundup.fast import layers as fast_layers
from groundup.fast.block import ConvReluPool
from test_fast_conv import block_case
from test_fast_layers import HAS_NUMBA, affine_case, softmax_case
from test_fast_model import run_case

ORDERS = 1e3


def _dropped_bias(self, x, out, lo, hi):
    np.matmul(x[lo:hi], self.layer.W, out=out[lo:hi])
    if lo == 0:  # later parts forget the bias
        out[lo:hi] += self.layer.b


_features = fast_layers.Affine.features


def _zero_dw(self, dout, dx, lo, hi):
    _features(self, dout, dx, lo, hi)
    if lo > 0:
        self.layer.dW[lo:hi] = 0


_chunk = ConvReluPool.chunk


def _first_chunks_images(self, work, lo, hi, train_flg):
    # samples lo..hi-1 read the images of samples 0..hi-lo-1
    _chunk(self, {**work, "view": np.roll(work["view"], lo, axis=5)}, lo, hi, train_flg)


def _assert_caught(report, checks):
    failed = report.failed()
    assert failed, "the break went unnoticed"
    for name in checks:
        ratio = report.ratios[report.prefix + name]
        assert ratio >= ORDERS, f"{name}: only {ratio:.3g} times its bound"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_dropped_bias_in_a_split_forward_is_caught(monkeypatch, dtype):
    monkeypatch.setattr(fast_layers.Affine, "rows", _dropped_bias)
    report = affine_case(dtype, 100, 2)
    if dtype == np.float64:
        _assert_caught(report, ["out"])
    else:  # float32's bounds for sums of thousands of terms are looser: caught, by less
        assert report.ratios[report.prefix + "out"] > 1
    assert not all(r.ok() for r in run_case("simple_convnet", dtype, 100, (2,)))


def test_a_zero_dw_in_a_split_backward_is_caught(monkeypatch):
    monkeypatch.setattr(fast_layers.Affine, "features", _zero_dw)
    _assert_caught(affine_case(np.float64, 256, 3), ["dW"])
    assert not affine_case(np.float32, 256, 3).ok()
    (report,) = run_case("simple_convnet", np.float64, 100, (2,))
    _assert_caught(report, ["dW2"])


def test_a_later_chunk_fed_the_first_chunks_images_is_caught(monkeypatch):
    monkeypatch.setattr(ConvReluPool, "chunk", _first_chunks_images)
    _assert_caught(block_case(np.float64, 100, 2, "simple_convnet"), ["out", "dW", "dx"])
    assert not block_case(np.float32, 100, 2, "simple_convnet").ok()
    (report,) = run_case("simple_convnet", np.float64, 256, (3,))
    assert report.ratios[report.prefix + "scores"] == np.inf
    _assert_caught(report, ["dW1"])


@pytest.mark.parametrize(("kind", "patch"), [
    ("simple_convnet", "no block"), ("not_tiled", "no CNHW convolution"),
    ("mlp_bn_dropout", "no fast batch norm"),
])
def test_a_fast_piece_that_did_not_run_is_caught(monkeypatch, kind, patch):
    if patch == "no block":
        monkeypatch.setattr(plan, "fusable", lambda *layers: False)
    else:
        from groundup import conv, layers

        core = conv.Convolution if patch == "no CNHW convolution" else layers.BatchNormalization
        monkeypatch.delitem(plan.COUNTERPARTS, core)
    (report,) = run_case(kind, np.float64, 100, (2,))
    failed = report.failed()
    assert failed and all(" [" in name for name in failed), failed  # only the trace checks


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
def test_a_numba_softmax_that_forgets_the_label_is_caught(monkeypatch):
    kernels = dict(_numba.kernels())

    def no_label(y, labels, scale, dx):  # dx = y · scale, the one-hot term dropped
        np.multiply(y, scale, out=dx)

    kernels["softmax_grad"] = no_label
    monkeypatch.setattr(_numba, "kernels", lambda: kernels)
    report = softmax_case(np.float64, 100, False, True, monkeypatch)
    _assert_caught(report, ["dx"])


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
def test_a_numba_softmax_that_did_not_run_is_caught(monkeypatch):
    report = softmax_case(np.float64, 100, False, True, monkeypatch)
    report.check()  # sound before
    monkeypatch.setattr(fast_layers._numba, "kernels", lambda: None)
    report = softmax_case(np.float64, 100, False, True, monkeypatch)
    failed = report.failed()
    assert failed and all(" [" in name for name in failed), failed  # only the trace check
