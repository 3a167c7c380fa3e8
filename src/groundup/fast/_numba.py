"""Optional numba kernels: fused optimizer updates (:mod:`.optim`) and the softmax loss.

NumPy runs an SGD-momentum step as four passes over memory (``buf *= m``, ``buf += g``,
``s = lr * buf``, ``p -= s``) and an Adam step as about a dozen; a fused, vectorized loop
reads and writes each element once. Every element goes through the same float operations
in the same order as the engine's NumPy kernels, in the array's own precision and without
fast-math, so the results are bit-identical with and without numba (tested).
The softmax cross-entropy (:class:`groundup.fast.layers.SoftmaxWithLoss`) runs as one loop
over each row of K scores instead of about twenty NumPy calls on (N, K) arrays, whose fixed
cost dominates at K = 10; its ``exp`` and ``log`` are libm's, so it agrees with NumPy's within
a few roundings per element (tested against the reference within the layer's bound).
``GROUNDUP_NUMBA=0`` turns the kernels off; without numba (``pip install 'groundup[fast]'``)
nothing changes.
"""

from __future__ import annotations

import os
from typing import Any

_state: dict[str, Any] = {"kernels": None, "tried": False}


def enabled() -> bool:
    return os.environ.get("GROUNDUP_NUMBA", "1") != "0"


def kernels() -> dict[str, Any] | None:
    """The compiled kernels, or ``None`` when numba is missing or turned off."""
    if not enabled():
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["kernels"] = _build()
        except ImportError:
            _state["kernels"] = None
    return _state["kernels"]


def _build() -> dict[str, Any]:
    import numba
    import numpy as np

    def sgd(p, g, buf, lr, momentum, weight_decay, nesterov, use_momentum, use_decay):
        for i in range(p.size):
            gi = g[i]
            if use_decay:
                gi = p[i] * weight_decay + gi
            if use_momentum:
                b = buf[i] * momentum
                b = b + gi
                buf[i] = b
                if nesterov:
                    s = b * momentum
                    s = s + gi
                    s = s * lr
                else:
                    s = b * lr
            else:
                s = gi * lr
            p[i] = p[i] - s

    def adam(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps_t, step,
             weight_decay, use_decay, shrink, decoupled):
        for i in range(p.size):
            pi = p[i]
            gi = g[i]
            if use_decay:
                gi = pi * weight_decay + gi
            if decoupled:
                pi = pi * shrink
            mi = m[i] * beta1
            s = gi * one_minus_beta1
            mi = mi + s
            m[i] = mi
            vi = v[i] * beta2
            s = gi * gi
            s = s * one_minus_beta2
            vi = vi + s
            v[i] = vi
            s = np.sqrt(vi)
            s = s + eps_t
            s = mi / s
            s = s * step
            p[i] = pi - s

    def softmax_loss(x, labels, y):
        # y = softmax(x) row by row; returns Σ_n -log y[n, t_n], or -1 - n for the first
        # row n whose label is outside [0, K) (the caller then raises the labels' error)
        n, k = x.shape
        total = x.dtype.type(0)
        for i in range(n):
            label = labels[i]
            if label < 0 or label >= k:
                return -1.0 - i
            top = x[i, 0]
            for j in range(1, k):
                top = max(top, x[i, j])
            s = x.dtype.type(0)
            for j in range(k):
                e = np.exp(x[i, j] - top)
                y[i, j] = e
                s = s + e
            # -log softmax(x)[t] = log Σ exp(z) - z[t], z = x - max
            total = total + (np.log(s) - (x[i, label] - top))
            for j in range(k):
                y[i, j] = y[i, j] / s
        return total

    def softmax_grad(y, labels, scale, dx):
        # dx = (y - onehot(t)) · scale, as y · scale with scale taken off at the label
        n, k = y.shape
        for i in range(n):
            for j in range(k):
                dx[i, j] = y[i, j] * scale
            dx[i, labels[i]] = dx[i, labels[i]] - scale

    # error_model="numpy": x / 0 gives inf or nan as in NumPy instead of raising, which
    # also lets the loops vectorize. One thread: the vectorized loops run at memory speed,
    # and a parallel loop's idle OpenMP threads would spin and slow whatever runs next.
    serial = numba.njit(cache=True, nogil=True, error_model="numpy")
    return {"sgd": serial(sgd), "adam": serial(adam), "softmax_loss": serial(softmax_loss),
            "softmax_grad": serial(softmax_grad)}
