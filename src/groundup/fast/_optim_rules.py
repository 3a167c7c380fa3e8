"""The rules of :mod:`groundup.optimizers` as in-place kernels, for the fast update (:mod:`.optim`).

Each kernel changes ``p`` and its state arrays ``slots`` (in ``opt.slots`` order) in place,
with ``work`` reusable scratch arrays shaped like ``p`` and ``c`` the scalars its
``constants`` function computed once for the update. SGD, AdaGrad, RMSprop and Adadelta do
the reference's operations in the reference's order; Adam, AdamW and Nadam fold the bias
corrections into one step size and one eps (a few roundings apart from the formula).
``fused`` runs the numba kernel of :mod:`._numba` with the same operations per element.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from groundup import optimizers as core


@dataclass(frozen=True)
class Rule:
    """A rule the engine knows: its kernels and how it may run."""

    name: str
    constants: Callable[[Any, float], tuple]  # (opt, lr) -> per-update scalars
    kernel: Callable[..., None]  # (opt, p, g, slots, work, c): the rule in place
    n_work: int = 1
    threaded: bool = True
    fused: Callable[..., None] | None = None  # (kernels, opt, p, g, slots, c), numba
    fusable: Callable[[Any], bool] = lambda opt: True


def _lr_only(opt: Any, lr: float) -> tuple[float, ...]:
    return (lr,)


def _sgd(opt, p, g, slots, work, c):
    (lr,), s, momentum = c, work[0], opt.momentum
    if momentum:
        buf = slots[0]
        buf *= momentum
        buf += g
        if opt.nesterov:
            np.multiply(buf, momentum, out=s)
            s += g
            s *= lr
        else:
            np.multiply(buf, lr, out=s)
    else:
        np.multiply(g, lr, out=s)
    p -= s


def _sgd_fused(kernels, opt, p, g, slots, c):
    kind = p.dtype.type
    buf = slots[0].reshape(-1) if slots else p.reshape(-1)  # unused without momentum
    kernels["sgd"](p.reshape(-1), g.reshape(-1), buf, kind(c[0]), kind(opt.momentum),
                   kind(opt.weight_decay), opt.nesterov, bool(opt.momentum),
                   bool(opt.weight_decay))


def _adagrad(opt, p, g, slots, work, c):
    (lr,), (h,), (s, t) = c, slots, work[:2]
    np.multiply(g, g, out=s)
    h += s
    np.sqrt(h, out=s)
    s += opt.eps
    np.multiply(g, lr, out=t)
    np.divide(t, s, out=s)
    p -= s


def _rmsprop(opt, p, g, slots, work, c):
    (lr,), s, rho = c, work[0], opt.rho
    v = slots[0]
    v *= rho
    np.multiply(g, g, out=s)
    s *= 1 - rho
    v += s
    if opt.centered:
        g_avg = slots[1]
        g_avg *= rho
        np.multiply(g, 1 - rho, out=s)
        g_avg += s
        np.multiply(g_avg, g_avg, out=s)
        np.subtract(v, s, out=s)
        np.sqrt(s, out=s)
    else:
        np.sqrt(v, out=s)
    s += opt.eps
    np.divide(g, s, out=s)
    if opt.momentum:
        buf = slots[-1]
        buf *= opt.momentum
        buf += s
        np.multiply(buf, lr, out=s)
    else:
        s *= lr
    p -= s


def _adadelta(opt, p, g, slots, work, c):
    (lr,), (v, u), (delta, t), rho = c, slots, work[:2], opt.rho
    v *= rho
    np.multiply(g, g, out=t)
    t *= 1 - rho
    v += t
    np.add(u, opt.eps, out=delta)
    np.sqrt(delta, out=delta)
    np.add(v, opt.eps, out=t)
    np.sqrt(t, out=t)
    delta /= t
    delta *= g
    u *= rho
    np.multiply(delta, delta, out=t)
    t *= 1 - rho
    u += t
    delta *= lr
    p -= delta


def _moments(opt, g, m, v, s):
    """``m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g²`` with scratch ``s``."""
    m *= opt.beta1
    np.multiply(g, 1 - opt.beta1, out=s)
    m += s
    v *= opt.beta2
    np.multiply(g, g, out=s)
    s *= 1 - opt.beta2
    v += s


def _adam_constants(opt: Any, lr: float) -> tuple[float, ...]:
    t = opt.iterations
    bc1, bc2_sqrt = 1 - opt.beta1**t, math.sqrt(1 - opt.beta2**t)
    # lr * m_hat / (sqrt(v_hat) + eps) == (lr * bc2_sqrt / bc1) * m / (sqrt(v) + eps * bc2_sqrt)
    return lr, lr * bc2_sqrt / bc1, opt.eps * bc2_sqrt


def _adam(opt, p, g, slots, work, c):
    (lr, step, eps_t), s = c, work[0]
    if not opt.coupled_weight_decay:
        p *= 1 - lr * opt.weight_decay  # AdamW
    m, v = slots[0], slots[1]
    _moments(opt, g, m, v, s)
    if opt.amsgrad:
        np.maximum(slots[2], v, out=slots[2])
        v = slots[2]
    np.sqrt(v, out=s)
    s += eps_t
    np.divide(m, s, out=s)
    s *= step
    p -= s


def _adam_fused(kernels, opt, p, g, slots, c):
    (lr, step, eps_t), kind = c, p.dtype.type
    coupled = opt.coupled_weight_decay and bool(opt.weight_decay)
    kernels["adam"](p.reshape(-1), g.reshape(-1), slots[0].reshape(-1), slots[1].reshape(-1),
                    kind(opt.beta1), kind(1 - opt.beta1), kind(opt.beta2), kind(1 - opt.beta2),
                    kind(eps_t), kind(step), kind(opt.weight_decay), coupled,
                    kind(1 - lr * opt.weight_decay), not opt.coupled_weight_decay)


def _no_amsgrad(opt: Any) -> bool:
    return not opt.amsgrad


def _nadam_constants(opt: Any, lr: float) -> tuple[float, ...]:
    t, mu_product = opt.iterations, opt.scalars["mu_product"]
    mu, mu_next = opt.mu(t), opt.mu(t + 1)
    bc2_sqrt = math.sqrt(1 - opt.beta2**t)
    # Both terms share sqrt(v_hat) + eps = (sqrt(v) + eps * bc2_sqrt) / bc2_sqrt.
    c_g = lr * (1 - mu) / (1 - mu_product) * bc2_sqrt
    c_m = lr * mu_next / (1 - mu_product * mu_next) * bc2_sqrt
    return c_g, c_m, opt.eps * bc2_sqrt


def _nadam(opt, p, g, slots, work, c):
    (c_g, c_m, eps_t), (m, v), (s, t) = c, slots, work[:2]
    _moments(opt, g, m, v, s)
    np.sqrt(v, out=s)
    s += eps_t
    np.divide(g, s, out=t)
    t *= c_g
    p -= t
    np.divide(m, s, out=t)
    t *= c_m
    p -= t


RULES: dict[type, Rule] = {
    # SGD's update moves a few bytes per flop: split over threads it runs slower.
    core.SGD: Rule("sgd", _lr_only, _sgd, threaded=False, fused=_sgd_fused),
    core.AdaGrad: Rule("adagrad", _lr_only, _adagrad, n_work=2),
    core.RMSprop: Rule("rmsprop", _lr_only, _rmsprop),
    core.Adadelta: Rule("adadelta", _lr_only, _adadelta, n_work=2),
    core.Adam: Rule("adam", _adam_constants, _adam, fused=_adam_fused, fusable=_no_amsgrad),
    core.AdamW: Rule("adamw", _adam_constants, _adam, fused=_adam_fused, fusable=_no_amsgrad),
    core.Nadam: Rule("nadam", _nadam_constants, _nadam, n_work=2),
}
