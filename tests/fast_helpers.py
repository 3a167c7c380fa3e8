"""Bounds and checks shared by the fast engine's equivalence tests (``test_fast_*.py``).

Bit-equal means ``np.array_equal`` with the same shape and dtype. Where the engine sums in
another order than the reference, the two are compared within

    BOUND(L, M) = 2 · L · eps · M,

with L the length of the sum, M = Σ |terms| computed in float64 and eps the dtype's machine
epsilon. A sum of L terms computed in any order is within γ_L · M of the exact sum, with
γ_L = L·u / (1 - L·u) and u = eps / 2 (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §3.1); two orders are therefore within 2 · γ_L · M ≤ 1.01 · L · eps · M
of each other while L·u ≤ 0.01, and BOUND allows twice that. For a whole network L is the
sum of the lengths of every sum on the way (:func:`path_length`) and M the magnitude of the
last sum (:func:`grad_magnitudes`), the bound Higham gives for a product of matrices
(Lemma 3.7) applied to the chain of layers.

A :class:`Report` collects checks as ratios |fast - ref| / bound (``inf`` for a bit-equal
check that fails), so a test asserts ``report.ok()`` and the mutation tests
(``test_fast_teeth.py``) can show by how much a broken engine misses.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from groundup.conv import Convolution, Pooling, im2col
from groundup.layers import Affine, BatchNormalization, Dropout, SoftmaxWithLoss


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def bound(length: int, magnitude, dtype) -> np.ndarray:
    """BOUND(L, M) = 2 · L · eps · M (module docstring)."""
    return 2.0 * length * eps(dtype) * np.asarray(magnitude, dtype=np.float64)


class Report:
    """Named checks as ratios of the difference to its bound; ok when every ratio <= 1."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.ratios: dict[str, float] = {}

    def equal(self, name: str, fast, ref) -> None:
        fast, ref = np.asarray(fast), np.asarray(ref)
        same = fast.shape == ref.shape and fast.dtype == ref.dtype and np.array_equal(fast, ref)
        self.ratios[self.prefix + name] = 0.0 if same else math.inf

    def close(self, name: str, fast, ref, limit) -> None:
        fast, ref = np.asarray(fast), np.asarray(ref)
        if fast.shape != ref.shape or fast.dtype != ref.dtype:
            self.ratios[self.prefix + name] = math.inf
            return
        diff = np.abs(fast.astype(np.float64) - ref.astype(np.float64))
        limit = np.broadcast_to(np.asarray(limit, dtype=np.float64), diff.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(diff == 0, 0.0, diff / limit)
        self.ratios[self.prefix + name] = float(ratio.max()) if ratio.size else 0.0

    def ran(self, name: str, ran: Counter, expected: set[str]) -> None:
        """The fast pieces that ran are exactly ``expected``."""
        self.ratios[self.prefix + name + " " + str(sorted(ran))] = \
            0.0 if set(ran) == set(expected) else math.inf

    def ok(self) -> bool:
        return all(r <= 1 for r in self.ratios.values())

    def failed(self) -> dict[str, float]:
        return {k: v for k, v in self.ratios.items() if not v <= 1}

    def worst(self) -> float:
        return max(self.ratios.values(), default=0.0)

    def check(self) -> None:
        assert self.ok(), f"over the bound (ratio > 1): {self.failed()}"


def dyadic(rng, shape, low: int, high: int, denominator: int, dtype) -> np.ndarray:
    """Integers in [low, high] / denominator: sums of a few thousand of their products are
    exact in float32, so every order of summation gives the same value."""
    return (rng.integers(low, high + 1, size=shape) / denominator).astype(dtype)


def snapshot(model):
    """The model's random state and arrays, to run the same step twice."""
    return (model.rng.bit_generator.state, {k: v.copy() for k, v in model.params.items()},
            {k: v.copy() for k, v in model.state.items()})


def restore(model, saved) -> None:
    state, params, arrays = saved
    model.rng.bit_generator.state = state
    for table, values in ((model.params, params), (model.state, arrays)):
        for k, v in values.items():
            table[k][...] = v


def reference_pass(model, x, t=None, train_flg=True):
    """The model's reference forward (and backward, given ``t``), layer by layer as
    ``Sequential.predict``/``gradient`` run it, keeping each layer's input and dout."""
    out = x.astype(model.dtype, copy=False)
    inputs, douts = {}, {}
    for name, layer in model.layers.items():
        inputs[name] = out
        out = layer.forward(out, train_flg)
    result = {"scores": out, "inputs": inputs, "douts": douts}
    if t is None:
        return result
    result["loss"] = model.last_layer.forward(out, t) + model.regularization_loss()
    dout = model.last_layer.backward(1)
    for name, layer in reversed(model.layers.items()):
        douts[name] = dout
        dout = layer.backward(dout)
    grads = {name: getattr(layer, "d" + attr).copy() for name, layer, attr in model._refs}
    for name, reg in model.regularizers.items():
        reg.add_grad(model.params[name], grads[name])
    result["grads"] = grads
    return result


def _abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def grad_magnitudes(model, ref) -> dict[str, np.ndarray]:
    """M for every gradient: Σ |terms| of its last sum, from the reference's taps."""
    names = {id(layer): name for name, layer in model.layers.items()}
    mags = {}
    for pname, layer, attr in model._refs:
        x, d = _abs64(ref["inputs"][names[id(layer)]]), _abs64(ref["douts"][names[id(layer)]])
        if type(layer) is Affine:
            x2 = x.reshape(x.shape[0], -1)
            mags[pname] = x2.T @ d if attr == "W" else d.sum(axis=0)
        elif type(layer) is Convolution:
            fn = layer.W.shape[0]
            d2 = d.transpose(0, 2, 3, 1).reshape(-1, fn)
            if attr == "W":
                col = im2col(x, *layer.W.shape[2:], layer.stride, layer.pad)
                mags[pname] = (col.T @ d2).T.reshape(layer.W.shape)
            else:
                mags[pname] = d2.sum(axis=0)
        elif type(layer) is BatchNormalization:
            d2, xn = layer.to_2d(d), _abs64(layer.xn)
            mags[pname] = (d2 * xn).sum(axis=0) if attr == "gamma" else d2.sum(axis=0)
        else:
            raise AssertionError(f"no magnitude for {type(layer).__name__}")
        reg = model.regularizers.get(pname)
        if reg is not None:  # the regularizer's gradient is added on both paths
            extra = np.zeros_like(model.params[pname])
            reg.add_grad(model.params[pname], extra)
            mags[pname] = mags[pname] + _abs64(extra)
    return mags


def score_magnitude(model, ref) -> np.ndarray:
    """M of the scores: |h| · |W| + |b| of the last (Affine) layer."""
    name, layer = list(model.layers.items())[-1]
    assert type(layer) is Affine, "the contract nets end with an Affine layer"
    h = _abs64(ref["inputs"][name]).reshape(len(ref["inputs"][name]), -1)
    return h @ _abs64(layer.W) + _abs64(layer.b)


def path_length(model, n: int) -> int:
    """L of a whole network: the lengths of every sum of a forward and backward pass."""
    total, shape = 0, (n, *model.input_shape)
    for layer in model.layers.values():
        if type(layer) is Affine:
            d, m = layer.W.shape
            total += d + m + n
            shape = (n, m)
        elif type(layer) is Convolution:
            fn, c, fh, fw = layer.W.shape
            oh = (shape[2] + 2 * layer.pad - fh) // layer.stride + 1
            ow = (shape[3] + 2 * layer.pad - fw) // layer.stride + 1
            total += c * fh * fw + fn * fh * fw + n * oh * ow
            shape = (n, fn, oh, ow)
        elif type(layer) is Pooling:
            oh = (shape[2] + 2 * layer.pad - layer.pool_h) // layer.stride + 1
            ow = (shape[3] + 2 * layer.pad - layer.pool_w) // layer.stride + 1
            total += layer.pool_h * layer.pool_w
            shape = (n, shape[1], oh, ow)
        elif type(layer) is BatchNormalization:
            total += 2 * math.prod(shape) // shape[1] + 4
        elif type(layer) is Dropout:
            total += 1
    if type(model.last_layer) is SoftmaxWithLoss:
        total += shape[1] + n + 3
    return total
