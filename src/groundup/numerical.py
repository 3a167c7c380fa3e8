"""Numerical calculus (book ch. 4): derivatives, gradients, gradient descent, gradient checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import numpy as np

from groundup._checks import check_number, type_error


def numerical_diff(f: Callable[[float], float], x: float, h: float = 1e-4) -> float:
    """Central difference: f'(x) ≈ (f(x + h) - f(x - h)) / 2h (error O(h²))."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4,
                       *, indices: Iterable[tuple[int, ...]] | None = None) -> np.ndarray:
    """Central-difference gradient of a scalar ``f`` at ``x``, for ``x`` of any shape.

    ∂f/∂x_i ≈ (f(x + h·e_i) - f(x - h·e_i)) / 2h. ``x`` is perturbed in place and restored
    exactly, so ``f`` may ignore its argument and read ``x`` through a closure (the book's
    ``lambda W: net.loss(x, t)`` idiom). With ``indices`` only those coordinates are computed
    (the rest of the result is 0), which makes checks of large arrays affordable.
    """
    if not isinstance(x, np.ndarray):
        raise type_error("numerical_gradient", "x", "a numpy.ndarray", x)
    if x.dtype.kind != "f":
        raise type_error("numerical_gradient", "x", "a floating-point array",
                         f"=array(dtype={x.dtype})", "use x.astype(np.float64).")
    grad = np.zeros_like(x)
    coords = np.ndindex(x.shape) if indices is None else indices
    for idx in coords:
        saved = x[idx]
        x[idx] = saved + h
        f_plus = f(x)
        x[idx] = saved - h
        f_minus = f(x)
        x[idx] = saved
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def gradient_descent(f: Callable[[np.ndarray], float], init_x: np.ndarray, lr: float = 0.01,
                     step_num: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Plain gradient descent x ← x - lr · ∇f(x) with numerical gradients.

    Returns ``(x, history)``: the final point and the (step_num, *x.shape) array of the
    points visited *before* each step, as the book's ``gradient_method.py`` records them.
    """
    check_number("gradient_descent", "lr", lr, low=0, low_open=True)
    check_number("gradient_descent", "step_num", step_num, low=0, integer=True)
    x = np.array(init_x, dtype=np.float64 if np.asarray(init_x).dtype.kind != "f" else None)
    history = np.empty((step_num, *x.shape), dtype=x.dtype)
    for i in range(step_num):
        history[i] = x
        x -= lr * numerical_gradient(f, x)
    return x, history


def relative_error(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a| + |n|, 1e-8), element-wise (docs/design.md, "Gradient checks")."""
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-8)


@contextmanager
def frozen_randomness(model):
    """Hold each dropout mask fixed so the loss is a deterministic function of the params."""
    layers = [layer for layer in getattr(model, "layers", {}).values()
              if hasattr(layer, "hold_mask")]
    for layer in layers:
        layer.hold_mask = True
    try:
        yield
    finally:
        for layer in layers:
            layer.hold_mask = False


def sample_indices(shape: tuple[int, ...], count: int | None,
                   rng: np.random.Generator) -> list[tuple[int, ...]]:
    """All coordinates of ``shape``, or ``count`` distinct random ones when it has more."""
    size = int(np.prod(shape))
    if count is None or size <= count:
        return list(np.ndindex(shape))
    flat = rng.choice(size, size=count, replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def _five_point(f: Callable[[np.ndarray], float], x: np.ndarray, i: tuple[int, ...],
                h: float) -> float:
    """f'(x) ≈ (-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h)) / 12h, truncation error O(h⁴)."""
    saved = x[i]
    values = []
    for k in (2, 1, -1, -2):
        x[i] = saved + k * h
        values.append(f(x))
    x[i] = saved
    return (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)


def gradient_check(model, x: np.ndarray, t: np.ndarray, *, coords: int | None = None,
                   retry_above: float = 1e-7, seed: int = 0) -> dict[str, float]:
    """Backprop vs numerical gradient of ``model.loss(x, t, train_flg=True)``, per parameter.

    Returns ``{name: max relative error}`` over every array in ``model.params``, with the
    relative error |a - n| / max(|a| + |n|, 1e-8). ``coords`` limits each array to that
    many random coordinates (``None``: all of them). Use float64 models; dropout masks are
    held fixed during the check.

    Every finite-difference estimate has its own way to fail: a large step has truncation
    error and may step across a ReLU or max-pool kink, a small one drowns in rounding
    noise. Each coordinate is first estimated by the central difference with h = 1e-5; if
    its error exceeds ``retry_above`` it is re-estimated by the five-point stencil
    (h = 1e-3, 1e-4; truncation O(h⁴), little noise) and the central difference with
    h = 1e-6 (a kink is less likely within a tiny step), keeping the smallest error. A
    wrong backward pass disagrees with all of them.
    """
    rng = np.random.default_rng(seed)
    errors: dict[str, float] = {}
    with frozen_randomness(model):
        analytic = model.gradient(x, t)

        def f(_: np.ndarray) -> float:
            return model.loss(x, t, train_flg=True)

        estimates = (lambda p, i: numerical_gradient(f, p, 1e-5, indices=[i])[i],
                     lambda p, i: _five_point(f, p, i, 1e-3),
                     lambda p, i: _five_point(f, p, i, 1e-4),
                     lambda p, i: numerical_gradient(f, p, 1e-6, indices=[i])[i])
        for name, param in model.params.items():
            worst = 0.0
            for i in sample_indices(param.shape, coords, rng):
                err = np.inf
                for estimate in estimates:
                    err = min(err, float(relative_error(analytic[name][i], estimate(param, i))))
                    if err <= retry_above:
                        break
                worst = max(worst, err)
            errors[name] = worst
    return errors
