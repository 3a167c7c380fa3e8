import numpy as np
import pytest

from groundup.functions import (
    cross_entropy_error,
    identity_function,
    leaky_relu,
    log_softmax,
    mean_squared_error,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    step_function,
    tanh,
)


def test_step_function_book_values():
    np.testing.assert_array_equal(step_function(np.array([-1.0, 0.0, 2.0])), [0, 0, 1])


def test_identity_returns_input():
    x = np.arange(3.0)
    assert identity_function(x) is x


def test_sigmoid_is_overflow_safe_and_exact():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(x)
    expected = 1 / (1 + np.exp(-np.array([-30.0, 0.0, 30.0])))
    np.testing.assert_allclose(y[1:4], expected, rtol=1e-15)
    assert y[0] == 0.0 and y[-1] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functions_keep_dtype(dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    for f in (sigmoid, sigmoid_grad, tanh, relu, relu_grad, leaky_relu, softmax, log_softmax):
        assert f(x).dtype == dtype, f.__name__


def test_sigmoid_grad_matches_formula():
    x = np.array([-2.0, 0.5, 3.0])
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(sigmoid_grad(x), s * (1 - s))


def test_relu_and_leaky_relu():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(relu(x), [0, 0, 3])
    np.testing.assert_array_equal(relu_grad(x), [0, 0, 1])
    np.testing.assert_allclose(leaky_relu(x, 0.1), [-0.2, 0, 3])


def test_softmax_is_stable_and_sums_to_one_for_any_batch_shape():
    x = np.array([1010.0, 1000.0, 990.0])
    y = softmax(x)
    ref = np.exp([20.0, 10.0, 0.0]) / np.exp([20.0, 10.0, 0.0]).sum()
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    batch = np.random.default_rng(0).normal(size=(2, 3, 5))
    yb = softmax(batch)
    np.testing.assert_allclose(yb.sum(axis=-1), 1.0)
    np.testing.assert_allclose(yb[1, 2], softmax(batch[1, 2]))
    np.testing.assert_allclose(np.exp(log_softmax(batch)), yb)


def test_mean_squared_error_book_example():
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert mean_squared_error(y, t) == pytest.approx(0.0975)
    # a batch averages the per-sample errors
    assert mean_squared_error(np.stack([y, y]), np.stack([t, t])) == pytest.approx(0.0975)


def test_cross_entropy_one_hot_and_labels_agree():
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert cross_entropy_error(y, t) == pytest.approx(0.510825457099338)
    assert cross_entropy_error(y, np.array(2)) == pytest.approx(0.510825457099338)
    batch_y = np.stack([y, np.roll(y, 1)])
    batch_t = np.array([2, 3])
    assert cross_entropy_error(batch_y, batch_t) == pytest.approx(
        cross_entropy_error(batch_y, np.eye(10)[batch_t]))
    assert cross_entropy_error(batch_y, batch_t) == pytest.approx(
        -(np.log(0.6 + 1e-7) + np.log(0.6 + 1e-7)) / 2)
