"""Search spaces: named hyperparameters with a log-uniform, uniform, integer or categorical
distribution, parsed from ``NAME=SPEC`` strings.

SPEC forms (``--param`` on the command line):

- ``log:LOW:HIGH`` — ``10 ** U(log10 LOW, log10 HIGH)``, the book's way for ``lr`` and
  ``weight_decay`` (``0 < LOW < HIGH``);
- ``uniform:LOW:HIGH`` — ``U(LOW, HIGH)`` (``LOW < HIGH``);
- ``int:LOW:HIGH`` — an integer drawn uniformly from ``LOW..HIGH`` inclusive;
- ``choice:A,B,...`` — one of the listed values;
- a bare value (``optimizer=adam``, ``hidden_layers=4``) fixes the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from groundup._checks import suggest, type_error, value_error

OWNER = "search"
KINDS = ("log", "uniform", "int", "choice", "fixed")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam",
                   "nadam", "adamw")

# name -> (value type, lowest allowed, highest allowed, highest is open)
PARAM_TYPES: dict[str, tuple[str, float | None, float | None, bool]] = {
    "lr": ("float", 0.0, None, False),
    "weight_decay": ("float", 0.0, None, False),
    "dropout_ratio": ("float", 0.0, 1.0, True),
    "momentum": ("float", 0.0, 1.0, True),
    "batchnorm": ("bool", None, None, False),
    "optimizer": ("str", None, None, False),
    "hidden_size": ("int", 1, None, False),
    "hidden_layers": ("int", 1, None, False),
    "batch_size": ("int", 1, None, False),
}

# What a trial uses for every parameter the space leaves out: the book's chapter 6 setup.
DEFAULTS: dict[str, Any] = {
    "lr": 0.01, "weight_decay": 0.0, "dropout_ratio": 0.0, "batchnorm": False,
    "optimizer": "sgd", "hidden_size": 100, "hidden_layers": 6, "batch_size": 100,
}

BOOK_SPACE = ("lr=log:1e-6:1e-2", "weight_decay=log:1e-8:1e-4")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: ``kind`` in ``KINDS``; ``low``/``high`` for numeric kinds,
    ``choices`` for ``choice`` and ``fixed`` (one value)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.kind in ("choice", "fixed"):
            return {"name": self.name, "kind": self.kind, "choices": list(self.choices)}
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Param:
        return cls(data["name"], data["kind"], data.get("low"), data.get("high"),
                   tuple(data.get("choices", ())))

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value: ``10 ** U(log10 low, log10 high)`` for ``log``."""
        if self.kind == "log":
            return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return self.choices[int(rng.integers(len(self.choices)))]

    def spec(self) -> str:
        if self.kind == "fixed":
            return f"{self.name}={_text(self.choices[0])}"
        if self.kind == "choice":
            return f"{self.name}=choice:" + ",".join(_text(c) for c in self.choices)
        low, high = (int(self.low), int(self.high)) if self.kind == "int" else (self.low,
                                                                                 self.high)
        return f"{self.name}={self.kind}:{low:g}:{high:g}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _convert(name: str, text: str, arg: str) -> Any:
    """A value of parameter ``name`` from its text, checked against the parameter's domain."""
    kind, low, high, high_open = PARAM_TYPES[name]
    text = text.strip()
    if kind == "str":
        if text.lower() not in OPTIMIZER_NAMES:
            raise value_error(OWNER, arg, "an optimizer name", text, suggest(text.lower(),
                                                                              OPTIMIZER_NAMES))
        return text.lower()
    if kind == "bool":
        truth = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}
        if text.lower() not in truth:
            raise value_error(OWNER, arg, "true or false", text)
        return truth[text.lower()]
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError as exc:
        raise value_error(OWNER, arg, f"{'an integer' if kind == 'int' else 'a number'}",
                          text) from exc
    if not math.isfinite(value):
        raise value_error(OWNER, arg, "finite", text)
    if (low is not None and value < low) or (high is not None and (
            value >= high if high_open else value > high)):
        right = ")" if high_open else "]"
        raise value_error(OWNER, arg, f"in [{low:g}, {'inf' if high is None else f'{high:g}'}"
                          f"{right} for {name}", text)
    return value


def parse_param(text: str) -> Param:
    """One ``NAME=SPEC`` string -> ``Param`` (see the module docstring for SPEC)."""
    if not isinstance(text, str):
        raise type_error(OWNER, "--param", "a NAME=SPEC string", text)
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise value_error(OWNER, "--param", "NAME=SPEC, e.g. lr=log:1e-6:1e-2", text)
    if name not in PARAM_TYPES:
        raise value_error(OWNER, "--param name", "a known hyperparameter", name,
                          suggest(name, PARAM_TYPES))
    arg = f"--param {name}"
    head, colon, rest = spec.partition(":")
    head = head.strip().lower()
    if not colon:
        return Param(name, "fixed", choices=(_convert(name, spec, arg),))
    if head == "choice":
        values = [v for v in rest.split(",") if v.strip()]
        if not values:
            raise value_error(OWNER, arg, "choice:A,B,... with at least one value", spec)
        choices = tuple(dict.fromkeys(_convert(name, v, arg) for v in values))
        return Param(name, "choice", choices=choices)
    if head not in ("log", "uniform", "int"):
        raise value_error(OWNER, f"{arg} kind", "log, uniform, int or choice", head,
                          suggest(head, ("log", "uniform", "int", "choice")))
    value_kind = PARAM_TYPES[name][0]
    if value_kind in ("str", "bool"):
        raise value_error(OWNER, f"{arg} kind", f"choice for a {value_kind} parameter", head,
                          f"use {name}=choice:A,B.")
    if value_kind == "int" and head != "int":
        raise value_error(OWNER, f"{arg} kind", "int or choice for an integer parameter", head)
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise value_error(OWNER, arg, f"{head}:LOW:HIGH", spec)
    if head == "log":
        try:
            positive = all(float(b) > 0 for b in bounds)
        except ValueError:
            positive = True  # not a number: _convert names the problem
        if not positive:
            raise value_error(OWNER, arg, "a log range with LOW > 0 and HIGH > 0", spec,
                              "use uniform:LOW:HIGH to include 0.")
    low, high = (_convert(name, b, arg) for b in bounds)
    if head == "int" and value_kind != "int":
        raise value_error(OWNER, f"{arg} kind", "log, uniform or choice for a real parameter",
                          head)
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise value_error(OWNER, arg, f"a range with LOW < HIGH ({what} range)",
                          spec, "`low < high` must hold.")
    return Param(name, head, float(low), float(high))


class SearchSpace:
    """An ordered set of ``Param``; ``SearchSpace.parse(["lr=log:1e-6:1e-2", ...])``."""

    def __init__(self, params: Iterable[Param]) -> None:
        self.params: dict[str, Param] = {}
        for param in params:
            if not isinstance(param, Param):
                raise type_error(OWNER, "params", "Param objects", param)
            if param.name in self.params:
                raise value_error(OWNER, "--param", "each name once", param.name)
            self.params[param.name] = param
        if not self.params:
            raise value_error(OWNER, "--param", "at least one parameter", "=none")

    @classmethod
    def parse(cls, specs: Iterable[str]) -> SearchSpace:
        """Parse ``NAME=SPEC`` strings; errors name the offending spec."""
        if isinstance(specs, str):
            specs = [specs]
        return cls(parse_param(s) for s in specs)

    @classmethod
    def book(cls) -> SearchSpace:
        """The book's chapter 6 space: lr 10^U(-6,-2), weight decay 10^U(-8,-4)."""
        return cls.parse(BOOK_SPACE)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One value per parameter, drawn in the space's order."""
        return {name: p.sample(rng) for name, p in self.params.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"params": [p.to_dict() for p in self.params.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        return cls(Param.from_dict(p) for p in data["params"])

    def specs(self) -> list[str]:
        return [p.spec() for p in self.params.values()]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.specs()))

    def __repr__(self) -> str:
        return f"SearchSpace({self.specs()!r})"

    def narrowed(self, top: list[dict[str, Any]]) -> SearchSpace:
        """Re-centre every numeric range on the values of the ``top`` trials' params: the
        new range spans their min..max (in log10 for log ranges), clipped to the old range.
        A range the top trials collapse to a point keeps a small width around it."""
        if not top:
            return self
        new = []
        for name, p in self.params.items():
            if p.kind in ("choice", "fixed"):
                kept = tuple(c for c in p.choices if any(t[name] == c for t in top))
                new.append(Param(name, p.kind, choices=kept or p.choices))
                continue
            values = np.array([float(t[name]) for t in top])
            if p.kind == "log":
                lo, hi = np.log10(values.min()), np.log10(values.max())
                old_lo, old_hi = math.log10(p.low), math.log10(p.high)
            else:
                lo, hi = float(values.min()), float(values.max())
                old_lo, old_hi = p.low, p.high
            pad = 0.05 * (old_hi - old_lo)
            lo, hi = max(old_lo, lo - pad), min(old_hi, hi + pad)
            if p.kind == "log":
                lo, hi = 10 ** lo, 10 ** hi
            if p.kind == "int":
                lo, hi = math.floor(lo), math.ceil(hi)
                if lo == hi:
                    lo, hi = (lo - 1, hi) if lo > p.low else (lo, hi + 1)
            new.append(Param(name, p.kind, float(lo), float(hi)))
        return SearchSpace(new)
