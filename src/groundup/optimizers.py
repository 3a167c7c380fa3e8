"""Optimizers with the update rules and defaults of ``torch.optim``.

Every optimizer changes the arrays of ``params`` in place (layers hold references to them):

>>> import numpy as np
>>> params = {"W": np.ones(3, dtype=np.float32)}
>>> grads = {"W": np.full(3, 0.5, dtype=np.float32)}
>>> opt = SGD(lr=0.1, momentum=0.9)
>>> opt.update(params, grads)
>>> params["W"]
array([0.95, 0.95, 0.95], dtype=float32)

Each rule is the :meth:`~Optimizer.step` of its class: the formula of the class docstring,
over one parameter, in the docstring's symbols. :meth:`Optimizer.update` checks the inputs,
counts the update ``t = 1, 2, …``, works out its learning rate and calls ``step`` for every
parameter, with ``g`` the gradient plus ``weight_decay * p`` (coupled L2, except AdamW).

State (``m``, ``v``, …) is keyed by parameter name, created on the first update with the
parameter's dtype, and saved as a flat ``dict[str, ndarray]`` by :meth:`Optimizer.state_dict`
(``"step"``, ``"lr"``, ``"m.W1"``, …) that ``np.savez`` can write. ``lr`` is a plain attribute
that a schedule may change between steps; ``decay`` adds Keras' legacy per-update decay
``lr_t = lr / (1 + decay * (t - 1))`` on top of it (:func:`groundup.schedules.inverse_time_lr`).

These classes are the reference. ``groundup.fast.optimizer(opt)`` computes the same updates
with packed buffers, threads and fused kernels, and is tested against them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, message, suggest, type_error
from groundup._optimizer import Optimizer, State, check_bool, check_positive, check_unit

__all__ = [
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adadelta", "Adam", "Nadam", "AdamW",
    "Optimizer", "get", "names",
]

class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    With ``g = grad + weight_decay * p`` and ``buf`` starting at 0::

        buf = momentum * buf + g            (if momentum > 0)
        d   = g + momentum * buf            (nesterov)  |  buf  |  g (no momentum)
        p   = p - lr * d

    Defaults: lr=1e-3, momentum=0, nesterov=False, weight_decay=0, decay=0.
    """

    name = "sgd"
    config_keys = (*Optimizer.config_keys, "momentum", "nesterov")

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.momentum = float(check_number(owner, "momentum", momentum, low=0.0))
        self.nesterov = check_bool(owner, "nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(message(owner, "momentum", "> 0 when nesterov=True", momentum,
                                     "set momentum (e.g. 0.9) or nesterov=False."))
        if self.momentum:
            self._set_slots("buf")

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        momentum = self.momentum
        if not momentum:
            p -= lr * g
            return
        buf = state["buf"]
        buf[...] = momentum * buf + g
        d = g + momentum * buf if self.nesterov else buf
        p -= lr * d


class Momentum(SGD):
    """SGD with (heavy-ball) momentum: ``SGD(momentum=0.9)`` with the book's lr=0.01 default.

    ``buf = momentum * buf + g;  p = p - lr * buf`` (torch's form; the book's ``v = α v − η g``
    gives the same path for a constant lr).
    """

    name = "momentum"
    config_keys = (*Optimizer.config_keys, "momentum")
    uses_nesterov = False

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 decay: float = 0.0) -> None:
        super().__init__(lr, momentum=momentum, nesterov=self.uses_nesterov,
                         weight_decay=weight_decay, decay=decay)



class Nesterov(Momentum):
    """Nesterov momentum: ``SGD(momentum=0.9, nesterov=True)`` with lr=0.01 by default.

    ``buf = momentum * buf + g;  p = p - lr * (g + momentum * buf)``.
    """

    name = "nesterov"
    uses_nesterov = True


class AdaGrad(Optimizer):
    """AdaGrad, as ``torch.optim.Adagrad`` (its ``lr_decay`` is ``decay`` here).

    ``h = h + g²;  p = p - lr * g / (sqrt(h) + eps)``.
    Defaults: lr=1e-2, eps=1e-10, weight_decay=0, decay=0.
    """

    name = "adagrad"
    config_keys = (*Optimizer.config_keys, "eps")

    def __init__(self, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        self.eps = check_positive(type(self).__name__, "eps", eps)
        self._set_slots("h")

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        h = state["h"]
        h += g**2
        p -= lr * g / (np.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop`` (torch's ``alpha`` is ``rho`` here).

    ``v = rho * v + (1 - rho) * g²``; centered: ``g_avg = rho * g_avg + (1 - rho) * g`` and
    ``v_bar = v - g_avg²``, else ``v_bar = v``; then ``d = g / (sqrt(v_bar) + eps)``; with
    momentum ``buf = momentum * buf + d`` and ``p = p - lr * buf``, otherwise ``p = p - lr * d``.
    Defaults: lr=1e-2, rho=0.99 (the book's ``decay_rate`` is accepted too), eps=1e-8,
    momentum=0, centered=False, weight_decay=0, decay=0.
    """

    name = "rmsprop"
    config_keys = (*Optimizer.config_keys, "rho", "eps", "momentum", "centered")

    def __init__(self, lr: float = 1e-2, rho: float | None = None, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0,
                 decay: float = 0.0, *, decay_rate: float | None = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        if rho is not None and decay_rate is not None:
            raise ValueError(message(owner, "decay_rate", "left out when rho is given",
                                     decay_rate, "decay_rate is the book's name for rho."))
        if rho is None:
            rho = 0.99 if decay_rate is None else decay_rate
        self.rho = check_unit(owner, "rho", rho)
        self.eps = check_positive(owner, "eps", eps)
        self.momentum = float(check_number(owner, "momentum", momentum, low=0.0))
        self.centered = check_bool(owner, "centered", centered)
        self._set_slots("v", *(("g_avg",) if self.centered else ()),
                        *(("buf",) if self.momentum else ()))

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        rho, v = self.rho, state["v"]
        v[...] = rho * v + (1 - rho) * g**2
        v_bar = v
        if self.centered:
            g_avg = state["g_avg"]
            g_avg[...] = rho * g_avg + (1 - rho) * g
            v_bar = v - g_avg**2  # the variance of g, not its raw second moment
        d = g / (np.sqrt(v_bar) + self.eps)
        if self.momentum:
            buf = state["buf"]
            buf[...] = self.momentum * buf + d
            d = buf
        p -= lr * d


class Adadelta(Optimizer):
    """Adadelta, as ``torch.optim.Adadelta``.

    ``v = rho * v + (1 - rho) * g²;  delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho * u + (1 - rho) * delta²;  p = p - lr * delta``.
    Defaults: lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, decay=0.
    """

    name = "adadelta"
    config_keys = (*Optimizer.config_keys, "rho", "eps")

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.rho = check_unit(owner, "rho", rho)
        self.eps = check_positive(owner, "eps", eps)
        self._set_slots("v", "u")

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        rho, eps, v, u = self.rho, self.eps, state["v"], state["u"]
        v[...] = rho * v + (1 - rho) * g**2
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u[...] = rho * u + (1 - rho) * delta**2
        p -= lr * delta


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (eps added after the bias correction of ``v``).

    ``m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g²;
    m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t)`` (``amsgrad``: of
    ``v_max = max(v_max, v)``); ``p = p - lr * m_hat / (sqrt(v_hat) + eps)``.
    Defaults: lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0 (added to g),
    amsgrad=False, decay=0.
    """

    name = "adam"
    config_keys = (*Optimizer.config_keys, "beta1", "beta2", "eps", "amsgrad")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.beta1 = check_unit(owner, "beta1", beta1)
        self.beta2 = check_unit(owner, "beta2", beta2)
        self.eps = check_positive(owner, "eps", eps)
        self.amsgrad = check_bool(owner, "amsgrad", amsgrad)
        self._set_slots("m", "v", *(("v_max",) if self.amsgrad else ()))

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        beta1, beta2, t = self.beta1, self.beta2, self.iterations
        m, v = state["m"], state["v"]
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g**2
        if self.amsgrad:
            v_max = state["v_max"]
            v_max[...] = np.maximum(v_max, v)
            v = v_max
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay, then the Adam step.

    ``p = p * (1 - lr * weight_decay)`` followed by :class:`Adam`'s rule on the raw ``g``.
    Defaults: lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=False.
    """

    name = "adamw"
    coupled_weight_decay = False

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 decay: float = 0.0) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, amsgrad, decay)

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        p *= 1 - lr * self.weight_decay
        super().step(p, g, state, lr)


class Nadam(Optimizer):
    """NAdam, as ``torch.optim.NAdam`` (momentum schedule of Dozat, ``psi = momentum_decay``).

    ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))``, ``mu_product = prod_{i<=t} mu_i``;
    ``m``, ``v`` as in Adam; ``v_hat = v / (1 - beta2^t)`` and
    ``p = p - lr * [(1 - mu_t) / (1 - mu_product) * g
    + mu_{t+1} / (1 - mu_product * mu_{t+1}) * m] / (sqrt(v_hat) + eps)``.
    Defaults: lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, momentum_decay=4e-3.
    """

    name = "nadam"
    config_keys = (*Optimizer.config_keys, "beta1", "beta2", "eps", "momentum_decay")

    def __init__(self, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.beta1 = check_unit(owner, "beta1", beta1)
        self.beta2 = check_unit(owner, "beta2", beta2)
        self.eps = check_positive(owner, "eps", eps)
        self.momentum_decay = float(check_number(owner, "momentum_decay", momentum_decay,
                                                 low=0.0))
        self._set_slots("m", "v")
        self.scalars["mu_product"] = 1.0

    def mu(self, t: int) -> float:
        """The momentum of update ``t``: ``beta1 * (1 - 0.5 * 0.96^(t * psi))``."""
        return self.beta1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def begin_update(self) -> None:
        self.scalars["mu_product"] *= self.mu(self.iterations)

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        beta1, beta2, t = self.beta1, self.beta2, self.iterations
        mu, mu_next, mu_product = self.mu(t), self.mu(t + 1), self.scalars["mu_product"]
        m, v = state["m"], state["v"]
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g**2
        v_hat = v / (1 - beta2**t)
        m_bar = (1 - mu) / (1 - mu_product) * g + mu_next / (1 - mu_product * mu_next) * m
        p -= lr * m_bar / (np.sqrt(v_hat) + self.eps)


_REGISTRY: dict[str, Callable[..., Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adadelta, Adam, Nadam,
                              AdamW)
}


def names() -> list[str]:
    """The names :func:`get` knows, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Optimizer, **kwargs: Any) -> Optimizer:
    """Build an optimizer by name (case-insensitive), e.g. ``get("adam", lr=3e-4)``.

    ``clipnorm=`` / ``clipvalue=`` clip the gradients as in Keras
    (:meth:`Optimizer.set_clipping`). An :class:`Optimizer` instance is returned unchanged.
    ``get(**opt.get_config())`` rebuilds an optimizer from its config.
    """
    if isinstance(name, Optimizer) and not kwargs:
        return name
    if not isinstance(name, str):
        raise type_error("optimizers.get", "name", "a str", name, suggest("", _REGISTRY))
    key = check_choice("optimizers.get", "name", name.lower(), _REGISTRY)
    clipping = {k: kwargs.pop(k) for k in ("clipnorm", "clipvalue") if k in kwargs}
    return _REGISTRY[key](**kwargs).set_clipping(**clipping)
