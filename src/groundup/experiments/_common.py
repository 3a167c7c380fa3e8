"""Helpers shared by the experiments: data loading, seeds, validation, JSON, plotting."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from groundup._checks import check_choice, check_number, value_error

DATASETS = ("mnist", "fashion-mnist", "mnist-sample")


@functools.cache
def _load(dataset: str, flatten: bool) -> tuple:
    from groundup import data

    if dataset == "mnist-sample":
        loaded = data.load_mnist_sample(normalize=True, flatten=flatten)
    elif dataset == "mnist":
        loaded = data.load_mnist(normalize=True, flatten=flatten)
    else:
        loaded = data.load_fashion_mnist(normalize=True, flatten=flatten)
    (x_train, t_train), (x_test, t_test) = loaded
    info = loaded.info.to_dict()
    summary = {"name": info["name"], "source": info["source"], "n_train": info["n_train"],
               "n_test": info["n_test"], "fallback": bool(info["fallback"])}
    if info["fallback"]:
        summary["note"] = ("full MNIST was not available here; the bundled sample was used: "
                           "5,000 real MNIST training digits for training, the official "
                           "10,000-image MNIST test set for test")
    return (x_train, t_train), (x_test, t_test), summary


def load(dataset: str, *, flatten: bool = True) -> tuple[tuple, tuple, dict[str, Any]]:
    """``((x_train, t_train), (x_test, t_test), data_summary)``; cached per process."""
    check_choice("experiment", "dataset", dataset, DATASETS)
    train, test, summary = _load(dataset, flatten)
    return train, test, dict(summary)


def used(data: dict[str, Any], n_train: int, n_test: int | None = None) -> dict[str, Any]:
    """``data`` plus how many training (and test) images the run actually used, which the
    figure titles report (``n_train``/``n_test`` are the sizes of the whole data set)."""
    data = {**data, "n_train_used": int(n_train)}
    if n_test is not None:
        data["n_test_used"] = int(n_test)
    return data


def head(x: np.ndarray, t: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` examples (all of them when ``size`` is 0), as the book slices."""
    return (x, t) if size == 0 else (x[:size], t[:size])


def child_rngs(seed: int, count: int) -> list[np.random.Generator]:
    """``count`` independent Generators derived from ``seed`` (one stream per arm)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def check_int(owner: str, name: str, value: Any, low: int = 1) -> None:
    check_number(owner, name, value, low=low, integer=True)


def check_positive(owner: str, name: str, value: Any) -> None:
    check_number(owner, name, value, low=0, low_open=True)


def check_sizes(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise value_error(owner, name, "a non-empty tuple of positive ints", value)
    for v in value:
        check_int(owner, name, v)


def check_dataset(owner: str, value: Any) -> None:
    check_choice(owner, "dataset", value, DATASETS)


# Fields many experiment configs share, each checked the same way wherever it appears.
_SHARED_FIELDS: dict[str, Any] = {
    "seed": lambda owner, v: check_int(owner, "seed", v, low=0),
    "convention": lambda owner, v: check_choice(owner, "convention", v, ("groundup", "book")),
    "dataset": check_dataset,
    "hidden": lambda owner, v: check_sizes(owner, "hidden", v),
    "lr": lambda owner, v: check_positive(owner, "lr", v),
    "batch_size": lambda owner, v: check_int(owner, "batch_size", v),
    "epochs": lambda owner, v: check_int(owner, "epochs", v),
}


def check_shared(owner: str, config: Any) -> None:
    """Check the fields of ``config`` that several experiments share (seed, dataset, ...)."""
    for name, check in _SHARED_FIELDS.items():
        if hasattr(config, name):
            check(owner, getattr(config, name))


def smooth(values: Any) -> list[float]:
    """The book's ``smooth_curve`` (Kaiser window, β = 2, width 11); short input unchanged."""
    from groundup.book import smooth_curve

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 11:
        return values.tolist()
    return smooth_curve(values).tolist()


def jsonable(value: Any) -> Any:
    """Plain Python for ``json.dumps``: arrays to lists, numpy scalars to Python floats and
    ints, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def tail_mean(values: list[float], count: int = 10) -> float:
    """Mean of the last ``count`` values (ignoring None)."""
    tail = [v for v in values[-count:] if v is not None]
    return float(np.mean(tail)) if tail else float("nan")


def smoothed_losses(rows: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Each row's per-step ``loss`` (None once training stopped) smoothed as in the book."""
    return {key: smooth([np.nan if v is None else v for v in row["loss"]])
            for key, row in rows.items()}


def final_loss(losses: list[float | None], last: int = 100) -> float | None:
    """Mean of the last ``last`` per-step losses; None when any of them is missing (the
    run stopped, or its loss was not finite)."""
    tail = losses[-last:]
    return None if any(v is None for v in tail) else float(np.mean(tail))


def loss_and_accuracy(rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Each row's mean loss of its last 100 steps, then each row's test accuracy."""
    out: dict[str, float | None] = {}
    for key, row in rows.items():
        out[f"{key} mean loss of last 100 iterations"] = final_loss(row["loss"])
    for key, row in rows.items():
        out[f"{key} test accuracy"] = row["test_accuracy"]
    return out


def loss_top(series: dict[str, list[float]], cap: float = 2.5) -> float:
    """A y-axis top that shows every smoothed curve from its start (the book cuts at 1,
    which hides where short runs still are), at most ``cap`` (a diverging arm)."""
    finite = [v for y in series.values() for v in y if v is not None and math.isfinite(v)]
    return min(cap, 1.05 * max(finite)) if finite else cap


def loss_figure(series: dict[str, list[float]], labels: dict[str, str], markers: list[str],
                ylim: float, title: str, path: Any) -> Any:
    """The book's smoothed-loss comparison: one marked line per series, saved to ``path``."""
    from groundup.plotting import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for marker, (key, y) in zip(markers, series.items(), strict=True):
        ax.plot(np.arange(len(y)), y, marker=marker, markevery=max(len(y) // 20, 1),
                label=labels[key])
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)")
    ax.set_ylim(0, ylim)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def _part(used: int | None, total: int, kind: str) -> str:
    if used is None or used == total:
        return f"{total:,} {kind}"
    return f"{used:,} of {total:,} {kind}"


def data_title(data: dict[str, Any]) -> str:
    """``mnist-sample (300 of 5,000 train / 1,000 of 10,000 test)``: the images the run
    used out of the data set's (the test part only when the run used a test set)."""
    parts = [_part(data.get("n_train_used"), data["n_train"], "train")]
    if "n_test_used" in data:
        parts.append(_part(data["n_test_used"], data["n_test"], "test"))
    return f"{data['name']} ({' / '.join(parts)})"


def net_name(n_in: int, hidden: Any, n_out: int) -> str:
    """``784-100x6-10`` (equal hidden layers as one ``size x count``), as the titles say."""
    hidden = list(hidden)
    if hidden and all(h == hidden[0] for h in hidden) and len(hidden) > 1:
        middle = [f"{hidden[0]}x{len(hidden)}"]
    else:
        middle = [str(h) for h in hidden]
    return "-".join([str(n_in), *middle, str(n_out)])


class _Progress:
    """Where ``progress`` lines go while the runner runs one seed (None: nowhere)."""

    stream: TextIO | None = None
    prefix = ""
    last = 0.0


@contextlib.contextmanager
def progress_to(stream: TextIO | None, prefix: str) -> Iterator[None]:
    """Send ``progress`` lines to ``stream``, each starting with ``prefix``, inside the block."""
    saved = (_Progress.stream, _Progress.prefix, _Progress.last)
    _Progress.stream, _Progress.prefix, _Progress.last = stream, prefix, 0.0
    try:
        yield
    finally:
        _Progress.stream, _Progress.prefix, _Progress.last = saved


def progress(message: str, *, every: float = 0.0) -> None:
    """One short line on the runner's log stream. ``every`` > 0 (a per-epoch or per-step
    line) drops the line when the previous one was printed less than ``every`` seconds ago,
    so that a fast loop prints a line a second rather than thousands."""
    stream = _Progress.stream
    if stream is None:
        return
    now = time.monotonic()
    if every > 0 and now - _Progress.last < every:
        return
    _Progress.last = now
    print(f"{_Progress.prefix}{message}", file=stream, flush=True)


def epoch_progress(label: str) -> Any:
    """A ``Trainer`` callback that reports ``label: epoch k/N, loss …`` (the first and the
    last epoch, and at most one a second between them)."""
    from groundup.callbacks import Callback

    class EpochProgress(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
            ends = epoch == 0 or epoch + 1 == trainer.epochs
            progress(f"{label}epoch {epoch + 1}/{trainer.epochs}, loss {logs['loss']:.4f}",
                     every=0.0 if ends else 1.0)

    return EpochProgress()


def compare_loop(nets: dict[str, tuple[Any, Any]], x: np.ndarray, t: np.ndarray, *, iters: int,
                 batch_size: int, rng: np.random.Generator, label: str | None = None,
                 watch: Any = None, first_step: int = 0) -> dict[str, list[float]]:
    """The book's comparison loop: every step draws one batch with replacement and every
    network takes one step on that same batch. Returns the per-step losses per network; a
    network whose loss stops being finite stops training (its remaining losses are None).
    With a ``label`` (e.g. ``""``), progress lines report the iteration. A ``watch``
    (:class:`~groundup.experiments._diagnostics.Watch`) takes diagnostics points around the
    updates, counted from ``first_step`` (the updates of earlier calls)."""
    losses: dict[str, list[float | None]] = {key: [] for key in nets}
    alive = dict.fromkeys(nets, True)
    for step in range(iters):
        done = first_step + step
        if label is not None:
            progress(f"{label}iteration {step + 1}/{iters}",
                     every=0.0 if step in (0, iters - 1) else 1.0)
        mask = rng.choice(len(x), batch_size)
        xb, tb = x[mask], t[mask]
        for key, (model, optimizer) in nets.items():
            if not alive[key]:
                losses[key].append(None)
                continue
            if watch is not None:
                watch.start(model, key, done)
            grads = model.gradient(xb, tb)
            loss = float(model.last_loss)
            if not math.isfinite(loss):
                alive[key] = False
                losses[key].append(None)
                if watch is not None:
                    watch.stopped(key, done)
                continue
            optimizer.update(model.params, grads)
            losses[key].append(loss)
            if watch is not None:
                watch.end(model, key, done + 1, loss)
    return losses
