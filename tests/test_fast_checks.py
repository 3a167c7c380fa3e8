"""The compiled model's input checks: the reference's errors, a deferred finiteness check."""

from __future__ import annotations

import numpy as np
import pytest

from groundup import fast
from groundup.fast.trace import tracing
from groundup.models import Sequential, SimpleConvNet, TwoLayerNet


def _net(kind):
    if kind == "conv":
        model = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3}, hidden_size=3,
                              output_size=2, rng=0)
        x = np.zeros((3, 1, 6, 6), dtype=np.float32)
        return model, x, (1, 0, 2, 3)
    model = (Sequential((4,), rng=0).add("sigmoid").add("dense", units=2)
             if kind == "sigmoid_first" else TwoLayerNet(4, 3, 2, rng=0))
    if kind == "dense_zero_row":
        model.params["W1"][1] = 0  # the bad element meets only zero weights: inf·0 = NaN
    return model, np.full((3, 4), 1e30, dtype=np.float32), (1, 1)  # large, finite values pass


def _error(call):
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["dense_first", "dense_zero_row", "sigmoid_first", "conv"])
def test_non_finite_input_raises_the_references_error(bad, kind):
    model, x, where = _net(kind)
    x[where] = bad
    t = np.array([0, 1, 0])
    want = _error(lambda: model.predict(x))
    assert "x must be finite" in want
    compiled = fast.compile(model)
    with tracing() as ran:
        assert _error(lambda: compiled.predict(x)) == want
    assert ("check.deferred" in ran) == kind.startswith("dense")
    assert _error(lambda: compiled.gradient(x, t)) == _error(lambda: model.gradient(x, t))
    x[where[0]] = 0
    with tracing() as ran:
        np.testing.assert_array_equal(compiled.predict(x), model.predict(x))
    assert ("check.deferred" in ran) == kind.startswith("dense")


def test_non_finite_weights_with_finite_input_are_not_the_inputs_fault():
    model = TwoLayerNet(4, 3, 2, activation="relu", rng=0)
    model.params["W1"][0, 0] = np.inf
    x = np.ones((2, 4), dtype=np.float32)
    compiled = fast.compile(model)
    with np.errstate(invalid="ignore"):
        scores = compiled.predict(x)  # no error, as the reference: only x is checked
        want = model.predict(x)
    assert not np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, want)


def test_no_check_when_check_finite_is_off():
    model, x, where = _net("dense_first")
    x[where] = np.nan
    compiled = fast.compile(model)
    compiled.check_finite = False
    with tracing() as ran, np.errstate(invalid="ignore"):
        compiled.predict(x)
    assert "check.deferred" not in ran


def test_wrong_input_shape_is_the_references_error():
    compiled = fast.compile(TwoLayerNet(784, 50, 10, rng=0))
    with pytest.raises(ValueError, match=r"TwoLayerNet: x.shape must be \(N, 784\)"):
        compiled.predict(np.zeros((2, 100), dtype=np.float32))
    conv = fast.compile(SimpleConvNet(rng=0))
    with pytest.raises(ValueError, match=r"SimpleConvNet: x.shape must be \(N, 1, 28, 28\)"):
        conv.gradient(np.zeros((2, 784), dtype=np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"t must be class labels in \[0, 9\]"):
        conv.loss(np.zeros((2, 1, 28, 28), dtype=np.float32), np.array([0, 10]))
