"""The base of every optimizer: input checks, the learning rate of an update, state and its I/O.

:mod:`groundup.optimizers` (torch's rules) and :mod:`groundup.book.optimizers` (the book's)
build on :class:`Optimizer`; each subclass writes its rule as :meth:`Optimizer.step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from groundup._checks import check_number, type_error, value_error
from groundup.schedules import inverse_time_lr

State = dict[str, np.ndarray]


class Optimizer:
    """Base class: input checks, the learning rate of each update, per-parameter state, I/O.

    A subclass sets ``name``, names the state arrays it keeps per parameter with
    ``_set_slots``, and writes its rule as :meth:`step`.
    """

    name: ClassVar[str] = "optimizer"
    # The hyperparameters get_config reports (constructor arguments, so get() rebuilds).
    config_keys: ClassVar[tuple[str, ...]] = ("lr", "weight_decay", "decay")
    # False for decoupled decay (AdamW), which applies weight_decay inside its own step.
    coupled_weight_decay: ClassVar[bool] = True
    _strict_dtypes: ClassVar[bool] = True

    def __init__(self, lr: float, *, weight_decay: float = 0.0, decay: float = 0.0) -> None:
        owner = type(self).__name__
        self.lr = check_number(owner, "lr", lr, low=0.0, low_open=True)
        self.weight_decay = float(check_number(owner, "weight_decay", weight_decay, low=0.0))
        self.decay = float(check_number(owner, "decay", decay, low=0.0))
        self.iterations = 0
        self.slots: tuple[str, ...] = ()
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.scalars: dict[str, float] = {}  # per-optimizer numbers saved by state_dict
        self.clipnorm: float | None = None
        self.clipvalue: float | None = None

    def set_clipping(self, clipnorm: float | None = None,
                     clipvalue: float | None = None) -> Optimizer:
        """Clip each gradient before the rule, as Keras' ``clipnorm`` / ``clipvalue``.

        ``clipnorm``: g ← g · min(1, clipnorm / ‖g‖), per parameter array;
        ``clipvalue``: g ← clip(g, -clipvalue, clipvalue), element-wise (after clipnorm).
        The remedy for exploding gradients (the book's ch. 6 warns of them with large
        learning rates); ``None`` turns a clip off.
        """
        owner = type(self).__name__
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None:
                check_number(owner, arg, value, low=0.0, low_open=True)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        return self

    def clip(self, g: np.ndarray) -> np.ndarray:
        """The gradient after ``clipnorm`` and ``clipvalue`` (a new array when clipped)."""
        if self.clipnorm is not None:
            norm = float(np.sqrt(np.sum(g * g)))
            if norm > self.clipnorm:
                g = g * g.dtype.type(self.clipnorm / norm)
        if self.clipvalue is not None:
            g = np.clip(g, -self.clipvalue, self.clipvalue)
        return g

    def _set_slots(self, *slots: str) -> None:
        self.slots = slots
        self.state = {slot: {} for slot in slots}

    # --- the public contract ---------------------------------------------------------
    def update(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Apply one step to every array of ``params`` in place, using ``grads[key]``."""
        grads = self.check_update(params, grads)
        states = {key: self.slot_arrays(key, p) for key, p in params.items()}
        self.iterations += 1
        lr = self.decayed_lr()
        self.begin_update()
        for key, p in params.items():
            g = grads[key]
            if self.coupled_weight_decay and self.weight_decay:
                g = g + self.weight_decay * p  # the gradient of 0.5 * weight_decay * p²
            self.step(p, g, states[key], lr)

    def step(self, p: np.ndarray, g: np.ndarray, state: State, lr: float) -> None:
        """The rule on one parameter: change ``p`` and the arrays of ``state`` in place."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat snapshot: ``"step"``, ``"lr"``, scalar state, and ``"<slot>.<param>"`` arrays."""
        out = {"step": np.asarray(self.iterations, dtype=np.int64),
               "lr": np.asarray(float(self.lr), dtype=np.float64)}
        for name, value in self.scalars.items():
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
        known = {"step", "lr", *self.scalars}
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
        for name in self.scalars:
            if name in keys:
                self.scalars[name] = float(np.asarray(state[name]))
        self.state = new_state

    def get_config(self) -> dict[str, Any]:
        """JSON-able name and hyperparameters; ``get(**config)`` rebuilds the optimizer."""
        config: dict[str, Any] = {"name": self.name}
        for key in self.config_keys:
            value = getattr(self, key)
            config[key] = value if isinstance(value, bool) else float(value)
        for key in ("clipnorm", "clipvalue"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # --- the pieces of an update (the fast engine calls them too) ------------------------
    def check_update(self, params: Any, grads: Any) -> dict[str, np.ndarray]:
        """Check ``lr`` and one update's inputs; return the gradients by key, clipped when
        ``clipnorm`` or ``clipvalue`` is set."""
        owner = type(self).__name__
        check_number(owner, "lr", self.lr, low=0.0)
        if not isinstance(params, Mapping):
            raise type_error(owner, "params", "a dict of numpy arrays", params)
        if not isinstance(grads, Mapping):
            raise type_error(owner, "grads", "a dict of numpy arrays", grads)
        if grads.keys() != params.keys():
            missing = sorted(set(params) - set(grads))
            extra = sorted(set(grads) - set(params))
            raise value_error(owner, "grads", "keyed like params",
                              f"=missing {missing}, extra {extra}")
        checked = {key: self._check_pair(owner, key, p, grads[key]) for key, p in params.items()}
        if self.clipnorm is not None or self.clipvalue is not None:
            checked = {key: self.clip(g) for key, g in checked.items()}
        return checked

    def slot_arrays(self, key: str, p: np.ndarray) -> State:
        """This parameter's state arrays by slot, created as zeros shaped like ``p``."""
        owner = type(self).__name__
        state = {}
        for slot in self.slots:
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
            state[slot] = arr
        return state

    def decayed_lr(self) -> float:
        """The learning rate of update ``t = iterations``: ``lr / (1 + decay * (t - 1))``."""
        return float(inverse_time_lr(float(self.lr), self.decay, self.iterations - 1))

    def begin_update(self) -> None:
        """Once per update, before the steps: per-update numbers (Nadam's product of mu)."""

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


def check_unit(owner: str, arg: str, value: Any) -> float:
    return float(check_number(owner, arg, value, low=0.0, high=1.0, high_open=True))


def check_positive(owner: str, arg: str, value: Any) -> float:
    return float(check_number(owner, arg, value, low=0.0, low_open=True))


def check_bool(owner: str, arg: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise type_error(owner, arg, "a bool", value)
    return bool(value)
