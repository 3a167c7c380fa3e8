"""Optimizers with the update rules and defaults of ``torch.optim``.

Every optimizer changes the arrays of ``params`` in place (layers hold references to them):

>>> import numpy as np
>>> params = {"W": np.ones(3, dtype=np.float32)}
>>> grads = {"W": np.full(3, 0.5, dtype=np.float32)}
>>> opt = SGD(lr=0.1, momentum=0.9)
>>> opt.update(params, grads)
>>> params["W"]
array([0.95, 0.95, 0.95], dtype=float32)

State (``m``, ``v``, …) is keyed by parameter name, created on the first update with the
parameter's dtype, and saved as a flat ``dict[str, ndarray]`` by :meth:`Optimizer.state_dict`
(``"step"``, ``"lr"``, ``"m.W1"``, …) that ``np.savez`` can write. ``lr`` is a plain attribute
that a schedule may change between steps; ``decay`` adds Keras' legacy per-update decay
``lr_t = lr / (1 + decay * (t - 1))`` on top of it.

Large updates are split over :func:`get_num_threads` threads; every element is computed by the
same sequence of operations whatever the split, so results do not depend on the thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from groundup._checks import check_choice, check_number, message, suggest, type_error, value_error
from groundup.fast import _numba as _fused
from groundup.fast import threads as _threads
from groundup.fast.threads import get_num_threads, set_num_threads

__all__ = [
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adadelta", "Adam", "Nadam", "AdamW",
    "Optimizer", "get", "get_num_threads", "set_num_threads",
]

# Below this many elements per thread, handing work to another thread costs more than it saves.
_MIN_PIECE = 1 << 15


class Optimizer:
    """Base class: validation, lazily created per-parameter state, state I/O, threading.

    Subclasses set ``name``, the state slots they keep per parameter, and implement
    ``_constants(lr)`` (per-step scalars) and ``_kernel(p, g, slots, work, c)`` (the rule on
    one block of elements, in place, with ``work`` preallocated scratch arrays).
    """

    name: ClassVar[str] = "optimizer"
    _n_work: ClassVar[int] = 1
    _coupled_decay: ClassVar[bool] = True
    _strict_dtypes: ClassVar[bool] = True
    # Memory-bound rules (a few passes per element) run slower split over threads.
    _threaded: ClassVar[bool] = True

    def __init__(self, lr: float, *, weight_decay: float = 0.0, decay: float = 0.0) -> None:
        owner = type(self).__name__
        self.lr = check_number(owner, "lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_number(owner, "weight_decay", weight_decay, low=0.0)
        self.decay = check_number(owner, "decay", decay, low=0.0)
        self.iterations = 0
        self.slots: tuple[str, ...] = ()
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scalars: dict[str, float] = {}
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
        self._scratch_views: dict[tuple, list[np.ndarray]] = {}
        self._plan: tuple[list[np.ndarray], list | None] | None = None
        self._flat_slots: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        self._gathered: np.ndarray | None = None

    def _set_slots(self, *slots: str) -> None:
        self.slots = slots
        self.state = {slot: {} for slot in slots}

    # --- the public contract ---------------------------------------------------------
    def update(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Apply one step to every array of ``params`` in place, using ``grads[key]``."""
        owner = type(self).__name__
        lr = float(check_number(owner, "lr", self.lr, low=0.0))
        if not isinstance(params, Mapping):
            raise type_error(owner, "params", "a dict of numpy arrays", params)
        if not isinstance(grads, Mapping):
            raise type_error(owner, "grads", "a dict of numpy arrays", grads)
        if grads.keys() != params.keys():
            missing = sorted(set(params) - set(grads))
            extra = sorted(set(grads) - set(params))
            raise value_error(owner, "grads", "keyed like params",
                              f"=missing {missing}, extra {extra}")
        keys = list(params)
        ps = list(params.values())
        gs = [self._check_pair(owner, key, p, grads[key]) for key, p in zip(keys, ps, strict=True)]
        items = self._packed_items(owner, keys, ps, gs)
        if items is None:
            items = [(p, g, [self._slot(owner, slot, key, p) for slot in self.slots])
                     for key, p, g in zip(keys, ps, gs, strict=True)]
        self.iterations += 1
        lr_t = lr / (1.0 + self.decay * (self.iterations - 1))
        self._run(items, self._constants(lr_t))

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat snapshot: ``"step"``, ``"lr"``, scalar state, and ``"<slot>.<param>"`` arrays."""
        out = {"step": np.asarray(self.iterations, dtype=np.int64),
               "lr": np.asarray(float(self.lr), dtype=np.float64)}
        for name, value in self._scalars.items():
            out[name] = np.asarray(value, dtype=np.float64)
        for slot, arrays in self.state.items():
            for key, arr in arrays.items():
                out[f"{slot}.{key}"] = arr.copy()
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore exactly what :meth:`state_dict` returned (also an ``np.load`` result)."""
        owner = type(self).__name__
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise type_error(owner, "state", "a mapping of arrays (from state_dict or np.load)",
                             state)
        keys = list(state.keys())
        if "step" not in keys:
            raise value_error(owner, "state", "a state_dict with a 'step' entry",
                              f"=keys {sorted(keys)[:8]}")
        known = {"step", "lr", *self._scalars}
        new_state: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slots}
        for name in keys:
            if name in known:
                continue
            slot, dot, key = name.partition(".")
            if not dot or slot not in new_state:
                raise value_error(owner, "state key", f"one of {sorted(known)} or '<slot>.<param>' "
                                  f"with slot in {list(self.slots)}", name,
                                  "was it saved by another optimizer or with other options?")
            new_state[slot][key] = np.array(state[name], copy=True)
        step = int(np.asarray(state["step"]))
        check_number(owner, "step", step, low=0, integer=True)
        self.iterations = step
        if "lr" in keys:
            self.lr = float(np.asarray(state["lr"]))
        for name in self._scalars:
            if name in keys:
                self._scalars[name] = float(np.asarray(state[name]))
        self.state = new_state

    def get_config(self) -> dict[str, Any]:
        """JSON-able name and hyperparameters; ``get(**config)`` rebuilds the optimizer."""
        config: dict[str, Any] = {"name": self.name}
        for key, value in self._hyperparameters().items():
            config[key] = value if isinstance(value, bool) else float(value)
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # --- hooks for subclasses ----------------------------------------------------------
    def _hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay, "decay": self.decay}

    def _constants(self, lr: float) -> tuple[float, ...]:
        return (lr,)

    def _kernel(self, p: np.ndarray, g: np.ndarray, slots: list[np.ndarray],
                work: list[np.ndarray], c: tuple[float, ...]) -> None:
        raise NotImplementedError

    # --- machinery ---------------------------------------------------------------------
    def _check_pair(self, owner: str, key: str, p: Any, g: Any) -> np.ndarray:
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise type_error(owner, f"params[{key!r}]", "a floating-point numpy array", p,
                             "the update is in place, so parameters must be arrays.")
        if isinstance(g, np.generic) or not (self._strict_dtypes or isinstance(g, np.ndarray)):
            g = np.asarray(g)
        if not isinstance(g, np.ndarray):
            raise type_error(owner, f"grads[{key!r}]", "a numpy array", g)
        if g.shape != p.shape:
            raise value_error(owner, f"grads[{key!r}].shape", f"{p.shape} like params[{key!r}]",
                              f"={g.shape}")
        if self._strict_dtypes and g.dtype != p.dtype:
            raise type_error(owner, f"grads[{key!r}].dtype", f"{p.dtype} like params[{key!r}]",
                             f"={g.dtype}", "cast the gradient or the parameter.")
        return g

    def _slot(self, owner: str, slot: str, key: str, p: np.ndarray) -> np.ndarray:
        arrays = self.state[slot]
        arr = arrays.get(key)
        if arr is None:
            arr = arrays[key] = np.zeros(p.shape, dtype=p.dtype)
        elif arr.shape != p.shape:
            raise value_error(owner, f"state '{slot}.{key}' shape",
                              f"{p.shape} like params[{key!r}]", f"={arr.shape}",
                              "the loaded state belongs to another model.")
        elif arr.dtype != p.dtype or not arr.flags.c_contiguous:
            arr = arrays[key] = np.ascontiguousarray(arr, dtype=p.dtype)
        return arr

    def _packed_items(self, owner: str, keys: list[str], ps: list[np.ndarray],
                      gs: list[np.ndarray]) -> list | None:
        """Update items over the one buffer the parameters tile (a model's ``params``), or
        None when they do not.

        Large parameters stay one item each; every run of small ones becomes one item: a
        slice of the buffer, its gradients gathered by one copy, and slices of flat state
        buffers laid out like the parameters (``state`` keeps per-parameter views of them).
        Element-wise rules give the same numbers either way.
        """
        plan = self._plan
        if plan is None or len(plan[0]) != len(ps) or any(
                a is not b for a, b in zip(plan[0], ps, strict=False)):
            plan = self._plan = (ps, _segments(ps))
        segments = plan[1]
        if segments is None:
            return None
        base = ps[0].base
        flats = [self._flat_state(owner, slot, keys, ps, base) for slot in self.slots]
        gathered = self._gathered
        if gathered is None or gathered.shape != base.shape or gathered.dtype != base.dtype:
            gathered = self._gathered = np.empty_like(base)
        items = []
        for start, stop, members in segments:
            if len(members) == 1:
                g = gs[members[0]]
                p = ps[members[0]]
            else:
                g = gathered[start:stop]
                np.concatenate([gs[i].reshape(-1) for i in members], out=g)
                p = base[start:stop]
            shape = p.shape
            items.append((p, g, [f[start:stop].reshape(shape) for f in flats]))
        return items

    def _flat_state(self, owner: str, slot: str, keys: list[str], ps: list[np.ndarray],
                    base: np.ndarray) -> np.ndarray:
        """``slot``'s state as one buffer laid out like ``base``, with ``state`` holding views."""
        arrays = self.state[slot]
        known = self._flat_slots.get(slot)
        if known is not None and known[0].shape == base.shape and known[0].dtype == base.dtype \
                and all(arrays.get(k) is v for k, v in zip(keys, known[1], strict=True)):
            return known[0]
        flat = np.zeros(base.shape, dtype=base.dtype)
        views = []
        offset = 0
        for key, p in zip(keys, ps, strict=True):
            view = flat[offset:offset + p.size].reshape(p.shape)
            old = arrays.get(key)
            if old is not None:
                if old.shape != p.shape:
                    raise value_error(owner, f"state '{slot}.{key}' shape",
                                      f"{p.shape} like params[{key!r}]", f"={old.shape}",
                                      "the loaded state belongs to another model.")
                view[...] = old
            arrays[key] = view
            views.append(view)
            offset += p.size
        self._flat_slots[slot] = (flat, views)
        return flat

    def _segment(self, p: np.ndarray, g: np.ndarray, slots: list[np.ndarray],
                 work: list[np.ndarray], c: tuple[float, ...]) -> None:
        if self._coupled_decay and self.weight_decay:
            w = work[-1]
            np.multiply(p, self.weight_decay, out=w)
            w += g
            g = w
        self._kernel(p, g, slots, work, c)

    def _run(self, items: list, c: tuple[float, ...]) -> None:
        n_threads = get_num_threads()
        total = sum(p.size for p, _, _ in items)
        if n_threads == 1 or not self._threaded or total < n_threads * _MIN_PIECE:
            shards: list[list[tuple]] = [items]
        else:
            shards = [[] for _ in range(n_threads)]
            loads = [0] * n_threads
            for p, g, slots in items:
                contiguous = p.flags.c_contiguous and g.flags.c_contiguous
                if contiguous and p.size >= n_threads * _MIN_PIECE:
                    pf, gf, sf = p.reshape(-1), g.reshape(-1), [s.reshape(-1) for s in slots]
                    bounds = [p.size * j // n_threads for j in range(n_threads + 1)]
                    for j in range(n_threads):
                        a, b = bounds[j], bounds[j + 1]
                        shards[j].append((pf[a:b], gf[a:b], [s[a:b] for s in sf]))
                        loads[j] += b - a
                else:
                    j = loads.index(min(loads))
                    shards[j].append((p, g, slots))
                    loads[j] += p.size
        n_work = self._n_work + (1 if self._coupled_decay and self.weight_decay else 0)
        jobs = [[(p, g, slots, self._work(j, p, n_work)) for p, g, slots in shard]
                for j, shard in enumerate(shards) if shard]
        _threads.run(self._run_shard, [(job, c) for job in jobs])

    def _work(self, j: int, p: np.ndarray, n_work: int) -> list[np.ndarray]:
        """``n_work`` scratch arrays shaped like ``p`` from shard ``j``'s reusable buffer."""
        views = self._scratch_views.get((j, p.shape, p.dtype, n_work))
        if views is not None:
            return views
        buf = self._scratch.get((j, p.dtype))
        n = p.size
        if buf is None or buf.size < n_work * n:
            buf = self._scratch[(j, p.dtype)] = np.empty(n_work * n, dtype=p.dtype)
            self._scratch_views.clear()  # views of the buffer just replaced
        views = [buf[i * n:(i + 1) * n].reshape(p.shape) for i in range(n_work)]
        self._scratch_views[(j, p.shape, p.dtype, n_work)] = views
        return views

    def _run_shard(self, shard: list, c: tuple[float, ...]) -> None:
        for p, g, slots, work in shard:
            self._segment(p, g, slots, work, c)


# Parameters below this size are updated together with their neighbours in the buffer.
_SMALL = 1 << 15


def _segments(ps: list[np.ndarray]) -> list[tuple[int, int, list[int]]] | None:
    """(start, stop, member indices) of the runs of ``ps`` over the buffer they tile in
    order, or None when they do not tile one (C-contiguous views of one flat array)."""
    base = ps[0].base if ps else None
    if (base is None or base.ndim != 1 or not base.flags.c_contiguous
            or base.dtype.kind != "f" or base.size != sum(p.size for p in ps)):
        return None
    start = base.__array_interface__["data"][0]
    segments: list[tuple[int, int, list[int]]] = []
    offset = 0
    after_small = False  # the last segment is a run of small parameters
    for i, p in enumerate(ps):
        if (p.base is not base or not p.flags.c_contiguous or p.dtype != base.dtype
                or p.__array_interface__["data"][0] != start + offset * base.itemsize):
            return None
        small = p.size < _SMALL
        if small and after_small:
            first, _, members = segments[-1]
            segments[-1] = (first, offset + p.size, [*members, i])
        else:
            segments.append((offset, offset + p.size, [i]))
        after_small = small
        offset += p.size
    return segments


def _fused_for(opt: Optimizer, cls: type, items: list) -> dict[str, Any] | None:
    """The fused kernels when they apply, else None: numba is there, ``cls``'s own rule is
    in use (not a subclass's), and every array is float32/float64, of one dtype and
    C-contiguous.
    """
    kernels = _fused.kernels() if type(opt)._kernel is cls._kernel else None
    if kernels is None or not all(_fusable(p, g, slots) for p, g, slots in items):
        return None
    return kernels


def _fusable(p: np.ndarray, g: np.ndarray, slots: list[np.ndarray]) -> bool:
    """Arrays the fused kernels take: float32/float64, one dtype, C-contiguous."""
    return (p.dtype in (np.float32, np.float64) and p.flags.c_contiguous
            and g.dtype == p.dtype and g.flags.c_contiguous
            and all(s.dtype == p.dtype and s.flags.c_contiguous for s in slots))


def _check_unit(owner: str, arg: str, value: Any) -> float:
    return check_number(owner, arg, value, low=0.0, high=1.0, high_open=True)


def _check_positive(owner: str, arg: str, value: Any) -> float:
    return check_number(owner, arg, value, low=0.0, low_open=True)


def _check_bool(owner: str, arg: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise type_error(owner, arg, "a bool", value)
    return bool(value)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    With ``g = grad + weight_decay * p`` and ``buf`` starting at 0::

        buf = momentum * buf + g            (if momentum > 0)
        d   = g + momentum * buf            (nesterov)  |  buf  |  g (no momentum)
        p   = p - lr * d

    Defaults: lr=1e-3, momentum=0, nesterov=False, weight_decay=0, decay=0.
    """

    name = "sgd"
    _threaded = False

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.momentum = check_number(owner, "momentum", momentum, low=0.0)
        self.nesterov = _check_bool(owner, "nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(message(owner, "momentum", "> 0 when nesterov=True", momentum,
                                     "set momentum (e.g. 0.9) or nesterov=False."))
        if self.momentum:
            self._set_slots("buf")

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _run(self, items: list, c: tuple[float, ...]) -> None:
        fused = _fused_for(self, SGD, items)
        if fused is None:
            super()._run(items, c)
            return
        for p, g, slots in items:
            kind = p.dtype.type
            buf = slots[0].reshape(-1) if slots else p.reshape(-1)  # unused without momentum
            fused["sgd"](p.reshape(-1), g.reshape(-1), buf, kind(c[0]), kind(self.momentum),
                         kind(self.weight_decay), self.nesterov, bool(self.momentum),
                         bool(self.weight_decay))

    def _kernel(self, p, g, slots, work, c):
        (lr,), s, momentum = c, work[0], self.momentum
        if momentum:
            buf = slots[0]
            buf *= momentum
            buf += g
            if self.nesterov:
                np.multiply(buf, momentum, out=s)
                s += g
                s *= lr
            else:
                np.multiply(buf, lr, out=s)
        else:
            np.multiply(g, lr, out=s)
        p -= s


class Momentum(SGD):
    """SGD with (heavy-ball) momentum: ``SGD(momentum=0.9)`` with the book's lr=0.01 default.

    ``buf = momentum * buf + g;  p = p - lr * buf`` (torch's form; the book's ``v = α v − η g``
    gives the same path for a constant lr).
    """

    name = "momentum"
    uses_nesterov = False

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 decay: float = 0.0) -> None:
        super().__init__(lr, momentum=momentum, nesterov=self.uses_nesterov,
                         weight_decay=weight_decay, decay=decay)

    def _hyperparameters(self) -> dict[str, Any]:
        config = super()._hyperparameters()
        del config["nesterov"]
        return config


class Nesterov(Momentum):
    """Nesterov momentum: ``SGD(momentum=0.9, nesterov=True)`` with lr=0.01 by default.

    ``buf = momentum * buf + g;  p = p - lr * (g + momentum * buf)``.
    """

    name = "nesterov"
    uses_nesterov = True


class AdaGrad(Optimizer):
    """AdaGrad, as ``torch.optim.Adagrad`` (its ``lr_decay`` is ``decay`` here).

    ``h = h + g²;  p = p - lr_t * g / (sqrt(h) + eps)``.
    Defaults: lr=1e-2, eps=1e-10, weight_decay=0, decay=0.
    """

    name = "adagrad"

    def __init__(self, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        self.eps = _check_positive(type(self).__name__, "eps", eps)
        self._set_slots("h")

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "eps": self.eps}

    def _kernel(self, p, g, slots, work, c):
        (lr,), (h,), s = c, slots, work[0]
        np.multiply(g, g, out=s)
        h += s
        np.sqrt(h, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        s *= lr
        p -= s


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop`` (torch's ``alpha`` is ``rho`` here).

    ``v = rho * v + (1 - rho) * g²``; centered: ``g_avg = rho * g_avg + (1 - rho) * g`` and
    ``v̄ = v - g_avg²`` else ``v̄ = v``; then ``d = g / (sqrt(v̄) + eps)``, with momentum
    ``buf = momentum * buf + d`` and ``p = p - lr * buf``, otherwise ``p = p - lr * d``.
    Defaults: lr=1e-2, rho=0.99 (the book's ``decay_rate`` is accepted too), eps=1e-8,
    momentum=0, centered=False, weight_decay=0, decay=0.
    """

    name = "rmsprop"

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
        self.rho = _check_unit(owner, "rho", rho)
        self.eps = _check_positive(owner, "eps", eps)
        self.momentum = check_number(owner, "momentum", momentum, low=0.0)
        self.centered = _check_bool(owner, "centered", centered)
        self._set_slots("v", *(("g_avg",) if self.centered else ()),
                        *(("buf",) if self.momentum else ()))

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "rho": self.rho, "eps": self.eps,
                "momentum": self.momentum, "centered": self.centered}

    def _kernel(self, p, g, slots, work, c):
        (lr,), s, rho = c, work[0], self.rho
        v = slots[0]
        v *= rho
        np.multiply(g, g, out=s)
        s *= 1.0 - rho
        v += s
        if self.centered:
            g_avg = slots[1]
            g_avg *= rho
            np.multiply(g, 1.0 - rho, out=s)
            g_avg += s
            np.multiply(g_avg, g_avg, out=s)
            np.subtract(v, s, out=s)
            np.sqrt(s, out=s)
        else:
            np.sqrt(v, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        if self.momentum:
            buf = slots[-1]
            buf *= self.momentum
            buf += s
            np.multiply(buf, lr, out=s)
        else:
            s *= lr
        p -= s


class Adadelta(Optimizer):
    """Adadelta, as ``torch.optim.Adadelta``.

    ``v = rho * v + (1 - rho) * g²;  delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho * u + (1 - rho) * delta²;  p = p - lr * delta``.
    Defaults: lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, decay=0.
    """

    name = "adadelta"
    _n_work = 2

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.rho = _check_unit(owner, "rho", rho)
        self.eps = _check_positive(owner, "eps", eps)
        self._set_slots("v", "u")

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "rho": self.rho, "eps": self.eps}

    def _kernel(self, p, g, slots, work, c):
        (lr,), (v, u), (delta, t), rho = c, slots, work[:2], self.rho
        v *= rho
        np.multiply(g, g, out=t)
        t *= 1.0 - rho
        v += t
        np.add(u, self.eps, out=delta)
        np.sqrt(delta, out=delta)
        np.add(v, self.eps, out=t)
        np.sqrt(t, out=t)
        delta /= t
        delta *= g
        u *= rho
        np.multiply(delta, delta, out=t)
        t *= 1.0 - rho
        u += t
        delta *= lr
        p -= delta


def _update_moments(g: np.ndarray, m: np.ndarray, v: np.ndarray, s: np.ndarray,
                    beta1: float, beta2: float) -> None:
    """In place, with ``s`` as scratch: ``m += (1 - beta1) * (g - m)`` (torch's lerp form of
    ``beta1 * m + (1 - beta1) * g``) and ``v = beta2 * v + (1 - beta2) * g²``."""
    np.subtract(g, m, out=s)
    s *= 1.0 - beta1
    m += s
    v *= beta2
    np.multiply(g, g, out=s)
    s *= 1.0 - beta2
    v += s


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (eps added after the bias correction of ``v``).

    ``m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g²;
    m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t)`` (``amsgrad``: of
    ``v_max = max(v_max, v)``); ``p = p - lr * m_hat / (sqrt(v_hat) + eps)``.
    Defaults: lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0 (added to g),
    amsgrad=False, decay=0.
    """

    name = "adam"

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.beta1 = _check_unit(owner, "beta1", beta1)
        self.beta2 = _check_unit(owner, "beta2", beta2)
        self.eps = _check_positive(owner, "eps", eps)
        self.amsgrad = _check_bool(owner, "amsgrad", amsgrad)
        self._set_slots("m", "v", *(("v_max",) if self.amsgrad else ()))

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps, "amsgrad": self.amsgrad}

    def _constants(self, lr: float) -> tuple[float, ...]:
        t = self.iterations
        bc1, bc2_sqrt = 1.0 - self.beta1 ** t, math.sqrt(1.0 - self.beta2 ** t)
        # lr * m_hat / (sqrt(v_hat) + eps) == (lr * bc2_sqrt / bc1) * m / (sqrt(v) + eps * bc2_sqrt)
        return lr, lr * bc2_sqrt / bc1, self.eps * bc2_sqrt

    def _run(self, items: list, c: tuple[float, ...]) -> None:
        fused = None if self.amsgrad else _fused_for(self, Adam, items)
        if fused is None:
            super()._run(items, c)
            return
        (_, step, eps_t) = c
        for p, g, (m, v) in items:
            kind = p.dtype.type
            fused["adam"](p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                          kind(1.0 - self.beta1), kind(self.beta2), kind(1.0 - self.beta2),
                          kind(eps_t), kind(step), kind(self.weight_decay),
                          bool(self.weight_decay))

    def _kernel(self, p, g, slots, work, c):
        (_, step, eps_t), s = c, work[0]
        m, v = slots[0], slots[1]
        _update_moments(g, m, v, s, self.beta1, self.beta2)
        if self.amsgrad:
            np.maximum(slots[2], v, out=slots[2])
            v = slots[2]
        np.sqrt(v, out=s)
        s += eps_t
        np.divide(m, s, out=s)
        s *= step
        p -= s


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: decoupled weight decay, then the Adam step.

    ``p = p * (1 - lr * weight_decay)`` followed by :class:`Adam`'s rule on the raw ``g``.
    Defaults: lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=False.
    """

    name = "adamw"
    _coupled_decay = False

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 decay: float = 0.0) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, amsgrad, decay)

    def _kernel(self, p, g, slots, work, c):
        if self.weight_decay:
            p *= 1.0 - c[0] * self.weight_decay
        super()._kernel(p, g, slots, work, c)


class Nadam(Optimizer):
    """NAdam, as ``torch.optim.NAdam`` (momentum schedule of Dozat, ``psi = momentum_decay``).

    ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))``, ``mu_product = prod_{i<=t} mu_i``;
    ``m``, ``v`` as in Adam; ``v_hat = v / (1 - beta2^t)`` and
    ``p = p - lr * [(1 - mu_t) / (1 - mu_product) * g
    + mu_{t+1} / (1 - mu_product * mu_{t+1}) * m] / (sqrt(v_hat) + eps)``.
    Defaults: lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, momentum_decay=4e-3.
    """

    name = "nadam"
    _n_work = 2

    def __init__(self, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay=weight_decay, decay=decay)
        owner = type(self).__name__
        self.beta1 = _check_unit(owner, "beta1", beta1)
        self.beta2 = _check_unit(owner, "beta2", beta2)
        self.eps = _check_positive(owner, "eps", eps)
        self.momentum_decay = check_number(owner, "momentum_decay", momentum_decay, low=0.0)
        self._set_slots("m", "v")
        self._scalars["mu_product"] = 1.0

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps, "momentum_decay": self.momentum_decay}

    def _constants(self, lr: float) -> tuple[float, ...]:
        t, psi, beta1 = self.iterations, self.momentum_decay, self.beta1
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = self._scalars["mu_product"] * mu
        self._scalars["mu_product"] = mu_product
        bc2_sqrt = math.sqrt(1.0 - self.beta2 ** t)
        # Both terms share sqrt(v_hat) + eps = (sqrt(v) + eps * bc2_sqrt) / bc2_sqrt.
        c_g = lr * (1.0 - mu) / (1.0 - mu_product) * bc2_sqrt
        c_m = lr * mu_next / (1.0 - mu_product * mu_next) * bc2_sqrt
        return c_g, c_m, self.eps * bc2_sqrt

    def _kernel(self, p, g, slots, work, c):
        (c_g, c_m, eps_t), (m, v), (s, t) = c, slots, work[:2]
        _update_moments(g, m, v, s, self.beta1, self.beta2)
        np.sqrt(v, out=s)
        s += eps_t
        np.divide(g, s, out=t)
        t *= c_g
        p -= t
        np.divide(m, s, out=t)
        t *= c_m
        p -= t


_REGISTRY: dict[str, Callable[..., Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adadelta, Adam, Nadam,
                              AdamW)
}


def get(name: str | Optimizer, **kwargs: Any) -> Optimizer:
    """Build an optimizer by name (case-insensitive), e.g. ``get("adam", lr=3e-4)``.

    An :class:`Optimizer` instance is returned unchanged. ``get(**opt.get_config())`` rebuilds
    an optimizer from its config.
    """
    if isinstance(name, Optimizer) and not kwargs:
        return name
    if not isinstance(name, str):
        raise type_error("optimizers.get", "name", "a str", name, suggest("", _REGISTRY))
    key = check_choice("optimizers.get", "name", name.lower(), _REGISTRY)
    return _REGISTRY[key](**kwargs)
