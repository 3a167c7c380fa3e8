import numpy as np
import pytest

from groundup.numerical import (
    gradient_descent,
    numerical_diff,
    numerical_gradient,
    relative_error,
)


def function_1(x):
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    return np.sum(x**2)


def test_numerical_diff_book_values():
    # the book: 0.1999999999990898 and 0.2999999999986347, true 0.2 and 0.3
    assert numerical_diff(function_1, 5) == pytest.approx(0.2, abs=1e-9)
    assert numerical_diff(function_1, 10) == pytest.approx(0.3, abs=1e-9)


@pytest.mark.parametrize("shape", [(2,), (3, 4), (2, 3, 4)])
def test_numerical_gradient_any_shape(shape):
    x = np.random.default_rng(1).normal(size=shape)
    grad = numerical_gradient(lambda v: np.sum(v**3), x)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-6, atol=1e-8)


def test_numerical_gradient_restores_x_and_supports_closures():
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    saved = W.copy()
    grad = numerical_gradient(lambda _: float(np.sum(W * W)), W)
    np.testing.assert_array_equal(W, saved)
    np.testing.assert_allclose(grad, 2 * W, rtol=1e-8)


def test_numerical_gradient_book_points():
    for point, want in [([3.0, 4.0], [6.0, 8.0]), ([0.0, 2.0], [0.0, 4.0]),
                        ([3.0, 0.0], [6.0, 0.0])]:
        np.testing.assert_allclose(numerical_gradient(function_2, np.array(point)), want,
                                   atol=1e-7)


def test_numerical_gradient_rejects_integer_arrays():
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        numerical_gradient(function_2, np.array([3, 4]))


def test_gradient_descent_returns_final_point_and_path():
    x, history = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=0.1, step_num=100)
    np.testing.assert_allclose(x, 0.0, atol=1e-8)
    assert history.shape == (100, 2)
    np.testing.assert_array_equal(history[0], [-3.0, 4.0])
    # each step multiplies x by (1 - 2·lr) on this function
    np.testing.assert_allclose(history[1], [-3.0 * 0.8, 4.0 * 0.8])


def test_gradient_descent_learning_rate_too_large_or_small():
    big, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=10.0, step_num=100)
    small, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    assert np.abs(big).max() > 1e10  # diverges, as the book shows
    np.testing.assert_allclose(small, [-3.0, 4.0], rtol=1e-6)  # barely moves


def test_gradient_descent_validates_lr():
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\]"):
        gradient_descent(function_2, np.array([1.0]), lr=0.0)


def test_relative_error_formula():
    np.testing.assert_allclose(relative_error(np.array([1.0, 0.0]), np.array([1.1, 0.0])),
                               [0.1 / 2.1, 0.0])
