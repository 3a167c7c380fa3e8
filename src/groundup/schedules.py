"""Learning-rate schedules: pure callables ``schedule(step) -> lr``, and a plateau policy.

A schedule keeps no state; ``step`` counts from 0 (an update or an epoch, as the caller
decides), so a schedule is easy to plot and to resume:

>>> schedule = LinearWarmup(CosineDecay(0.1, period=10), warmup_steps=5)
>>> [round(schedule(t), 4) for t in (0, 5, 10, 15, 20)]
[0.0, 0.1, 0.05, 0.0, 0.0]

The trainer sets ``optimizer.lr = schedule(step)`` before each update (or epoch).
:class:`ReduceLROnPlateau` is the one stateful policy: ``lr = policy.step(val_loss)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, suggest, type_error, value_error

__all__ = [
    "Constant", "StepDecay", "ExponentialDecay", "InverseTimeDecay", "CosineDecay",
    "LinearWarmup", "Chain", "ReduceLROnPlateau", "get",
]


def _check_step(owner: str, step: Any) -> int:
    return int(check_number(owner, "step", step, low=0, integer=True))


def _check_lr(owner: str, lr: Any, arg: str = "lr") -> float:
    return float(check_number(owner, arg, lr, low=0.0, low_open=True))


def _as_schedule(owner: str, arg: str, value: Any) -> Callable[[int], float]:
    if callable(value):
        return value
    return Constant(_check_lr(owner, value, arg))


class _Schedule:
    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(_Schedule):
    """``lr(t) = lr``."""

    def __init__(self, lr: float) -> None:
        self.lr = _check_lr("Constant", lr)

    def __call__(self, step: int) -> float:
        _check_step("Constant", step)
        return self.lr


class StepDecay(_Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps (``torch.optim.lr_scheduler.StepLR``).

    ``lr(t) = lr * gamma ** floor(t / step_size)``.
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr = _check_lr("StepDecay", lr)
        self.step_size = check_number("StepDecay", "step_size", step_size, low=1, integer=True)
        self.gamma = check_number("StepDecay", "gamma", gamma, low=0.0, low_open=True)

    def __call__(self, step: int) -> float:
        t = _check_step("StepDecay", step)
        return self.lr * self.gamma ** (t // self.step_size)


class ExponentialDecay(_Schedule):
    """``lr(t) = lr * gamma ** (t / decay_steps)``, floored to whole periods when ``staircase``.

    With ``decay_steps=1`` this is ``torch.optim.lr_scheduler.ExponentialLR``.
    """

    def __init__(self, lr: float, gamma: float, decay_steps: int = 1,
                 staircase: bool = False) -> None:
        owner = "ExponentialDecay"
        self.lr = _check_lr(owner, lr)
        self.gamma = check_number(owner, "gamma", gamma, low=0.0, low_open=True)
        self.decay_steps = check_number(owner, "decay_steps", decay_steps, low=1, integer=True)
        if not isinstance(staircase, bool):
            raise type_error(owner, "staircase", "a bool", staircase)
        self.staircase = staircase

    def __call__(self, step: int) -> float:
        t = _check_step("ExponentialDecay", step)
        periods = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.lr * self.gamma ** periods


class InverseTimeDecay(_Schedule):
    """Keras' ``decay``: ``lr(t) = lr / (1 + decay * t / decay_steps)``.

    With ``decay_steps=1`` and ``t`` the number of updates done so far, this is the
    optimizers' ``decay`` keyword.
    """

    def __init__(self, lr: float, decay: float, decay_steps: int = 1) -> None:
        self.lr = _check_lr("InverseTimeDecay", lr)
        self.decay = check_number("InverseTimeDecay", "decay", decay, low=0.0)
        self.decay_steps = check_number("InverseTimeDecay", "decay_steps", decay_steps, low=1,
                                        integer=True)

    def __call__(self, step: int) -> float:
        t = _check_step("InverseTimeDecay", step)
        return self.lr / (1.0 + self.decay * t / self.decay_steps)


class CosineDecay(_Schedule):
    """Cosine annealing from ``lr`` to ``min_lr`` over ``period`` steps, then ``min_lr``.

    ``lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * t_i / T_i)) / 2``. Without restarts
    ``t_i = t``, ``T_i = period`` (``t >= period`` gives ``min_lr``). With ``restarts=True``
    (SGDR, ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``) the cycle starts again
    at ``lr`` after each cycle, and each cycle is ``period_mult`` times longer than the last.
    """

    def __init__(self, lr: float, period: int, min_lr: float = 0.0, restarts: bool = False,
                 period_mult: float = 1.0) -> None:
        owner = "CosineDecay"
        self.lr = _check_lr(owner, lr)
        self.period = check_number(owner, "period", period, low=1, integer=True)
        self.min_lr = float(check_number(owner, "min_lr", min_lr, low=0.0, high=self.lr))
        if not isinstance(restarts, bool):
            raise type_error(owner, "restarts", "a bool", restarts)
        self.restarts = restarts
        self.period_mult = float(check_number(owner, "period_mult", period_mult, low=1.0))

    def __call__(self, step: int) -> float:
        t = _check_step("CosineDecay", step)
        length = float(self.period)
        if not self.restarts:
            if t >= length:
                return self.min_lr
        elif self.period_mult == 1.0:
            t = t % self.period
        else:
            # Closed form of the cycle index: the cycles end at period * (mult^n - 1) / (mult - 1).
            n = int(math.log(t * (self.period_mult - 1.0) / self.period + 1.0, self.period_mult))
            start = self.period * (self.period_mult ** n - 1.0) / (self.period_mult - 1.0)
            if start > t:
                n -= 1
                start = self.period * (self.period_mult ** n - 1.0) / (self.period_mult - 1.0)
            length = self.period * self.period_mult ** n
            if t - start >= length:
                start, length = start + length, length * self.period_mult
            t = t - start
        return self.min_lr + (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * t / length)) / 2


class LinearWarmup(_Schedule):
    """Rise linearly from ``start_lr`` to ``after(0)`` over ``warmup_steps``, then follow ``after``.

    ``lr(t) = start_lr + (after(0) - start_lr) * t / warmup_steps`` for ``t < warmup_steps``,
    else ``after(t - warmup_steps)``. ``after`` is a schedule or a constant lr.
    """

    def __init__(self, after: Callable[[int], float] | float, warmup_steps: int,
                 start_lr: float = 0.0) -> None:
        owner = "LinearWarmup"
        self.after = _as_schedule(owner, "after", after)
        self.warmup_steps = check_number(owner, "warmup_steps", warmup_steps, low=1,
                                         integer=True)
        self.start_lr = float(check_number(owner, "start_lr", start_lr, low=0.0))

    def __call__(self, step: int) -> float:
        t = _check_step("LinearWarmup", step)
        if t >= self.warmup_steps:
            return float(self.after(t - self.warmup_steps))
        target = float(self.after(0))
        return self.start_lr + (target - self.start_lr) * t / self.warmup_steps


class Chain(_Schedule):
    """Run ``schedules[i]`` from ``milestones[i - 1]`` on, each from its own step 0.

    ``lr(t) = schedules[i](t - milestones[i - 1])`` for ``milestones[i - 1] <= t <
    milestones[i]`` (``torch.optim.lr_scheduler.SequentialLR``); floats are constant lrs.
    """

    def __init__(self, schedules: Sequence[Callable[[int], float] | float],
                 milestones: Sequence[int]) -> None:
        owner = "Chain"
        if not isinstance(schedules, Sequence) or len(schedules) < 1:
            raise type_error(owner, "schedules", "a non-empty list of schedules", schedules)
        self.schedules = [_as_schedule(owner, f"schedules[{i}]", s)
                          for i, s in enumerate(schedules)]
        milestones = list(milestones)
        if len(milestones) != len(self.schedules) - 1:
            raise value_error(owner, "len(milestones)",
                              f"len(schedules) - 1 = {len(self.schedules) - 1}",
                              f"={len(milestones)}")
        previous = 0
        for i, m in enumerate(milestones):
            check_number(owner, f"milestones[{i}]", m, low=previous + 1, integer=True)
            previous = m
        self.milestones = [int(m) for m in milestones]

    def __call__(self, step: int) -> float:
        t = _check_step("Chain", step)
        start = 0
        for schedule, end in zip(self.schedules, self.milestones, strict=False):
            if t < end:
                return float(schedule(t - start))
            start = end
        return float(self.schedules[-1](t - start))


class ReduceLROnPlateau:
    """Multiply the lr by ``factor`` when a metric stops improving (Keras' rule).

    A value improves on ``best`` when ``metric < best - min_delta`` (mode ``'min'``) or
    ``metric > best + min_delta`` (``'max'``); NaN never improves. After ``patience``
    non-improving calls in a row, ``lr = max(lr * factor, min_lr)``, and the next ``cooldown``
    calls neither count nor reduce (they still record a new best). Keras' callback lets the
    last cooldown call count already; here all ``cooldown`` calls are paused, as in torch.

    >>> policy = ReduceLROnPlateau(0.1, patience=1, factor=0.5)
    >>> [policy.step(loss) for loss in (1.0, 0.9, 0.95, 0.91, 0.8)]
    [0.1, 0.1, 0.05, 0.025, 0.025]
    """

    def __init__(self, lr: float, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        owner = "ReduceLROnPlateau"
        self.lr = _check_lr(owner, lr)
        self.mode = check_choice(owner, "mode", mode, ("min", "max"))
        self.factor = float(check_number(owner, "factor", factor, low=0.0, high=1.0,
                                         low_open=True, high_open=True))
        self.patience = int(check_number(owner, "patience", patience, low=0, integer=True))
        self.min_delta = float(check_number(owner, "min_delta", min_delta, low=0.0))
        self.cooldown = int(check_number(owner, "cooldown", cooldown, low=0, integer=True))
        self.min_lr = float(check_number(owner, "min_lr", min_lr, low=0.0))
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, metric: float) -> bool:
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def step(self, metric: float) -> float:
        """Record one value of the monitored metric; return the lr to use from now on."""
        owner = "ReduceLROnPlateau"
        if isinstance(metric, bool) or not isinstance(metric, int | float | np.integer |
                                                      np.floating):
            raise type_error(owner, "metric", "a real number", metric)
        metric = float(metric)
        improved = self._improved(metric)
        if improved:
            self.best = metric
            self.wait = 0
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        elif not improved:
            self.wait += 1
            if self.wait >= self.patience and self.lr > self.min_lr:
                self.lr = max(self.lr * self.factor, self.min_lr)
                self.cooldown_counter = self.cooldown
                self.wait = 0
        return self.lr

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat 0-d arrays (``lr``, ``best``, ``wait``, ``cooldown_counter``) for ``np.savez``."""
        return {"lr": np.asarray(self.lr), "best": np.asarray(self.best),
                "wait": np.asarray(self.wait, dtype=np.int64),
                "cooldown_counter": np.asarray(self.cooldown_counter, dtype=np.int64)}

    def load_state_dict(self, state: Any) -> None:
        """Restore what :meth:`state_dict` returned."""
        owner = "ReduceLROnPlateau"
        names = ("lr", "best", "wait", "cooldown_counter")
        if not hasattr(state, "keys"):
            raise type_error(owner, "state", "a mapping from state_dict", state)
        missing = [name for name in names if name not in state.keys()]
        if missing:
            raise value_error(owner, "state", f"a mapping with keys {list(names)}",
                              f"=missing {missing}")
        self.lr = float(np.asarray(state["lr"]))
        self.best = float(np.asarray(state["best"]))
        self.wait = int(np.asarray(state["wait"]))
        self.cooldown_counter = int(np.asarray(state["cooldown_counter"]))

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(lr={self.lr!r}, mode={self.mode!r}, factor={self.factor!r}, "
                f"patience={self.patience!r}, min_delta={self.min_delta!r}, "
                f"cooldown={self.cooldown!r}, min_lr={self.min_lr!r})")


_REGISTRY: dict[str, Callable[..., Any]] = {
    "constant": Constant, "step": StepDecay, "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay, "cosine": CosineDecay, "warmup": LinearWarmup,
    "plateau": ReduceLROnPlateau,
}


def names() -> list[str]:
    """The names :func:`get` accepts, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: Any) -> Any:
    """Build a schedule by name: ``get("cosine", lr=0.1, period=100)`` (case-insensitive)."""
    if not isinstance(name, str):
        raise type_error("schedules.get", "name", "a str", name, suggest("", _REGISTRY))
    key = check_choice("schedules.get", "name", name.lower(), _REGISTRY)
    return _REGISTRY[key](**kwargs)


def inverse_time_lr(lr: float, decay: float, step: int) -> float:
    """The lr after ``step`` updates under Keras' ``decay``: ``lr / (1 + decay * step)``.

    :class:`InverseTimeDecay` with ``decay_steps=1``, without its checks; the optimizers'
    ``decay`` keyword uses it with ``step = t - 1`` at update ``t``.

    >>> inverse_time_lr(0.1, 0.5, 2)
    0.05
    """
    return lr / (1.0 + decay * step)
