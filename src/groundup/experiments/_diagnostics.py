"""Diagnostics for the arms of an experiment's comparison loop (docs/diagnostics.md).

The experiments train several networks side by side on the same batches
(:func:`~groundup.experiments._common.compare_loop`), not through ``Trainer.fit``, so the
:class:`~groundup.diagnostics.Diagnostics` callback cannot hook in; a :class:`Watch` calls
it at the loop's steps instead: one point before the first update and one after every
``every``-th. Each arm writes its own ``diagnostics.json``/``.npz`` into
``<run>/diagnostics/seed-<seed>/<arm>/``; the run directory is set by the experiment
runner with :func:`diagnostics_to` (an experiment run from Python without it records none).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from groundup import _files
from groundup.diagnostics import Diagnostics
from groundup.io import write_text_atomic

_DIRECTORY: list[Path | None] = [None]


@contextlib.contextmanager
def diagnostics_to(directory: str | Path | None) -> Iterator[None]:
    """Experiments run inside write their arms' diagnostics under ``directory``."""
    saved = _DIRECTORY[0]
    _DIRECTORY[0] = None if directory is None else Path(directory)
    try:
        yield
    finally:
        _DIRECTORY[0] = saved


def slug(label: str) -> str:
    """An arm's directory name: ``std=0.01`` → ``std-0.01``, ``batch norm`` → ``batch-norm``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-").lower() or "arm"


class Watch:
    """A diagnostics point for every arm before training and after every ``every``-th update;
    :meth:`finish` writes the files.

    Args:
        labels: the arms' names (each gets its own directory), or ``{loop key: name}``
            when the loop's keys do not say enough (``batch norm`` → ``std 1, batch norm``).
        x, t: the training data the probe is drawn from (the same probe for every arm).
        seed: the run's seed (the probe's own seed is derived from it).
        every: updates between points.
        batch_size: to state each point's position in epochs too.
        unit: ``"iteration"`` or ``"epoch"``, what charts and hints count in.
    """

    def __init__(self, labels: list[str] | dict[str, str], x: np.ndarray, t: np.ndarray, *,
                 seed: int,
                 every: int, batch_size: int, unit: str = "iteration",
                 directory: Path | None = None) -> None:
        base = directory if directory is not None else _DIRECTORY[0]
        if base is None:
            raise ValueError("Watch needs a directory (or diagnostics_to)")
        self.every, self.epoch_per_step = int(every), batch_size / len(x)
        names = labels if isinstance(labels, dict) else {label: label for label in labels}
        self.arms = {key: Diagnostics(x, t, base / slug(label), seed=seed, unit=unit)
                     for key, label in names.items()}
        _files.output_dir("experiment diagnostics", base)
        index = base / "arms.json"  # every watch of the run adds its arms, in run order
        listed = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []
        listed += [{"label": label, "dir": slug(label)} for label in names.values()
                   if label not in {a["label"] for a in listed}]
        write_text_atomic(index, json.dumps(listed, indent=1) + "\n")
        self.losses: dict[str, list[float]] = {key: [] for key in names}

    def start(self, model: Any, label: str, done: int) -> None:
        """Before ``label``'s update number ``done + 1``: the first point, or remember the
        weights of the update that ends an interval."""
        if done == 0 and not self.arms[label].points:
            self._record(model, label, 0)
        if (done + 1) % self.every == 0:
            self.arms[label].remember(model)

    def end(self, model: Any, label: str, done: int, loss: float) -> None:
        """After ``label``'s ``done``-th update (which had training loss ``loss``)."""
        self.losses[label].append(loss)
        if done % self.every == 0:
            self._record(model, label, done)

    def stopped(self, label: str, done: int) -> None:
        """``label``'s loss stopped being finite at update ``done + 1``: no more points."""
        points = self.arms[label].points
        if points and "diverged_after" not in points[-1]:  # a later loop may try it again
            points[-1]["diverged_after"] = {"epoch": round(done * self.epoch_per_step, 4),
                                            "step": done + 1}

    def _record(self, model: Any, label: str, done: int) -> None:
        losses, self.losses[label] = self.losses[label], []
        logs = {"loss": float(np.mean(losses))} if losses else None
        self.arms[label].record(model, epoch=done * self.epoch_per_step, logs=logs, step=done,
                                write=False)

    def finish(self) -> None:
        """Write every arm's files (once, at the end: the loop's points are seconds apart)."""
        for diagnostics in {id(d): d for d in self.arms.values()}.values():
            if diagnostics.points:
                diagnostics.write()


def watch(labels: list[str] | dict[str, str], x: np.ndarray, t: np.ndarray, *, enabled: bool,
          seed: int, every: int, batch_size: int, unit: str = "iteration") -> Watch | None:
    """A :class:`Watch` when ``enabled`` and the runner set a directory, else None."""
    if not enabled or _DIRECTORY[0] is None:
        return None
    return Watch(labels, x, t, seed=seed, every=every, batch_size=batch_size, unit=unit)


def arms(directory: str | Path) -> dict[str, dict[str, Path]]:
    """``{"seed-N": {arm label: its directory}}`` of an experiment run, arms in run order."""
    root = Path(directory) / "diagnostics"
    found: dict[str, dict[str, Path]] = {}
    if not root.is_dir():
        return found
    for seed_dir in sorted((p for p in root.iterdir() if p.is_dir()),
                           key=lambda p: int(p.name.rsplit("-", 1)[-1]) if
                           p.name.rsplit("-", 1)[-1].isdigit() else -1):
        try:
            listed = json.loads((seed_dir / "arms.json").read_text(encoding="utf-8"))
            pairs = [(str(a["label"]), seed_dir / slug(str(a["dir"]))) for a in listed]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        found[seed_dir.name] = {label: d for label, d in pairs
                                if (d / "diagnostics.json").is_file()}
    return found
