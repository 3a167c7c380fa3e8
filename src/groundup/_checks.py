"""The one place where error messages are built and public inputs are validated.

Every message has the form ``"<Owner>: <arg> must be <constraint>; got <arg>=<value>."``,
followed by a fix when one is obvious. ``TypeError`` for a wrong type, ``ValueError`` for
a wrong value, shape or name, ``RuntimeError`` for a wrong call order.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def message(owner: str, arg: str, constraint: str, value: Any, fix: str | None = None) -> str:
    """Build the house error text; ``value`` is shown with ``repr`` unless it is a str
    starting with ``=``, which is used verbatim (for shapes and summaries)."""
    shown = value[1:] if isinstance(value, str) and value.startswith("=") else _show(value)
    text = f"{owner}: {arg} must be {constraint}; got {arg}={shown}."
    return f"{text} {fix}" if fix else text


def value_error(owner: str, arg: str, constraint: str, value: Any,
                fix: str | None = None) -> ValueError:
    return ValueError(message(owner, arg, constraint, value, fix))


def type_error(owner: str, arg: str, constraint: str, value: Any,
               fix: str | None = None) -> TypeError:
    return TypeError(message(owner, arg, constraint, value, fix))


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` plus the full list of valid names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    listed = ", ".join(repr(c) for c in choices)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}Valid names: {listed}."


def check_choice(owner: str, arg: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if not isinstance(value, str):
        raise type_error(owner, arg, "a str", value, suggest("", choices))
    if value not in choices:
        raise value_error(owner, arg, "one of the known names", value, suggest(value, choices))
    return value


def check_number(owner: str, arg: str, value: Any, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False,
                 integer: bool = False) -> Any:
    """Check a real (or integer) scalar against an interval; returns it unchanged."""
    kind = "an int" if integer else "a real number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type:
        raise type_error(owner, arg, kind, value)
    if not math.isfinite(float(value)):
        raise value_error(owner, arg, "finite", value)
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise value_error(owner, arg, f"in {left}{lo}, {hi}{right}", value)
    return value


def check_array(owner: str, arg: str, x: Any, *, ndim: int | tuple[int, ...] | None = None,
                finite: bool = True) -> np.ndarray:
    """Check that ``x`` is a real ndarray of the given rank(s) with finite values."""
    if not isinstance(x, np.ndarray):
        raise type_error(owner, arg, "a numpy.ndarray", x, "convert with numpy.asarray(...).")
    if x.dtype.kind not in "fiub":
        raise type_error(owner, arg, "a real-valued array", f"=array(dtype={x.dtype})")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise value_error(owner, f"{arg}.ndim", want, f"={x.ndim} (shape {x.shape})")
    if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise value_error(owner, arg, "finite (no NaN or Inf)",
                          f"=array with {bad} non-finite values")
    return x


def check_labels(owner: str, t: Any, n: int, num_classes: int) -> np.ndarray:
    """Labels as class indices (N,) or one-hot (N, num_classes); returns class indices."""
    check_array(owner, "t", t, ndim=(1, 2))
    if t.shape[0] != n:
        raise value_error(owner, "len(t)", f"equal to the batch size {n}", f"={t.shape[0]}")
    if t.ndim == 2:
        if t.shape[1] != num_classes:
            raise value_error(owner, "t.shape[1]", f"{num_classes} (one-hot width)",
                              f"={t.shape[1]}", "pass class indices or one-hot of the right width.")
        return t.argmax(axis=1)
    if t.dtype.kind == "f" and not np.array_equal(t, np.round(t)):
        raise value_error(owner, "t", "integer class labels", "=non-integer values")
    if n and (t.min() < 0 or t.max() >= num_classes):
        raise value_error(owner, "t", f"class labels in [0, {num_classes - 1}]",
                          f"=values in [{t.min()}, {t.max()}]")
    return t.astype(np.intp, copy=False)
