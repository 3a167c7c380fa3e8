"""Seeing inside training: per-layer statistics on a fixed probe batch (docs/diagnostics.md).

At the start of training and at the end of every ``every``-th epoch (or after every
``every_steps``-th update) the :class:`Diagnostics` callback runs the model's reference
layers on a probe batch — a stratified sample of the training data drawn with its own
generator (``probe_seed(seed)``), never the training one:

- activations, as a training step sees them (batch norm on the probe's own statistics,
  dropout off): mean, std, a histogram over fixed bins, the share of zeros and of units
  dead on the whole batch (ReLU), the share saturated (sigmoid < 0.01 or > 0.99, tanh
  |y| > 0.99);
- gradients, from the backward pass of that same step: ‖g‖ and a histogram of log10|g|
  per parameter; a histogram of each weight array;
- update-to-weight ratios: ‖Δw‖/‖w‖ of the last update before the point
  (``update_ratio``) and since the previous point (``change_ratio``);
- the probe loss in evaluation mode (``loss``) and in that training step
  (``train_mode_loss``, at the start compared with ln(classes)); for conv nets the first
  layer's filters and its feature maps for one probe image.

Nothing the training computes is changed: batch-norm running statistics and the model's
generator state are saved before the pass and put back after it, so a run with diagnostics
gives the same history and weights as one without (tested). Written to the run directory,
atomically, as ``diagnostics.json`` (numbers per point) and ``diagnostics.npz``
(histograms, filters, feature maps; no pickle).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from groundup import _files
from groundup._checks import check_choice, check_number, value_error
from groundup.callbacks import Callback
from groundup.diagnostics.probe import (
    first_conv,
    json_number,
    norm,
    probe_indices,
    probe_pass,
    probe_seed,
)
from groundup.io import npz_headers, write_text_atomic

__all__ = ["Diagnostics", "probe_indices", "probe_seed", "probe_pass", "load"]

FORMAT = "groundup.diagnostics"
FORMAT_VERSION = 1
BINS = 40
# Gradients span many orders of magnitude; their histogram is over log10|g|.
LOG_GRAD_EDGES = np.linspace(-12.0, 2.0, BINS + 1)
SATURATION = {"Sigmoid": "y < 0.01 or y > 0.99", "Tanh": "|y| > 0.99"}


def _edges(kind: str, values: np.ndarray) -> np.ndarray:
    """Fixed bins for one layer's activations, chosen at its first diagnostics point."""
    if kind == "Sigmoid":
        return np.linspace(0.0, 1.0, BINS + 1)
    if kind == "Tanh":
        return np.linspace(-1.0, 1.0, BINS + 1)
    finite = values[np.isfinite(values)]
    # room for the spread to grow threefold before values pile up in the outer bins
    top = float(np.abs(finite).max()) * 3 if finite.size else 1.0
    top = top if top > 0 else 1.0
    low = 0.0 if kind == "Relu" else -top
    return np.linspace(low, top, BINS + 1)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts over the uniform ``edges``; values beyond them fall into the outermost bins.

    The bin of v is floor((v - low) / width), computed in the values' own dtype and
    counted with ``bincount`` (several times faster than ``np.histogram`` on feature maps).
    """
    flat = values.ravel()
    finite = np.isfinite(flat)
    if not finite.all():
        flat = flat[finite]
    bins = len(edges) - 1
    low, high = float(edges[0]), float(edges[-1])
    index = ((flat - low) * (bins / (high - low))).astype(np.int64)
    np.clip(index, 0, bins - 1, out=index)
    return np.bincount(index, minlength=bins).astype(np.int32)


class Diagnostics(Callback):
    """Write ``diagnostics.json`` and ``diagnostics.npz`` into ``directory`` during ``fit``.

    Args:
        x, t: the training data the probe batch is drawn from.
        directory: where the two files go (the run directory).
        seed: the run's seed; the probe is drawn from ``probe_seed(seed)``.
        probe_size: examples in the probe batch (stratified by class).
        every: a diagnostics point after every ``every``-th epoch (and one before training).
        every_steps: instead, a point after every ``every_steps``-th update (counted over
            the whole run, like ``Trainer.global_step``).
        unit: what a point's position is counted in, for charts and hints: ``"epoch"``
            (``fit``) or ``"iteration"`` (a loop of single updates, as the experiments').
    """

    def __init__(self, x: np.ndarray, t: np.ndarray, directory: str | Path, *, seed: int = 0,
                 probe_size: int = 256, every: int = 1, every_steps: int | None = None,
                 unit: str = "epoch") -> None:
        check_number("Diagnostics", "probe_size", probe_size, low=1, integer=True)
        check_number("Diagnostics", "every", every, low=1, integer=True)
        if every_steps is not None:
            check_number("Diagnostics", "every_steps", every_steps, low=1, integer=True)
        check_choice("Diagnostics", "unit", unit, ("epoch", "iteration"))
        if len(x) != len(t):
            raise value_error("Diagnostics", "len(t)", f"len(x) = {len(x)}", len(t))
        self.directory = Path(directory)
        self.seed, self.probe_size, self.every = int(seed), int(probe_size), int(every)
        self.every_steps = None if every_steps is None else int(every_steps)
        self.unit = unit
        self.indices = probe_indices(t, probe_size, seed)
        self.x, self.t = x[self.indices], t[self.indices]
        self.points: list[dict[str, Any]] = []
        self.hist: dict[str, list[np.ndarray]] = {}
        self.edges: dict[str, np.ndarray] = {}
        self.images: dict[str, np.ndarray] = {}
        self._previous: dict[str, np.ndarray] | None = None
        self._before_last: dict[str, np.ndarray] | None = None

    # ---- hooks ------------------------------------------------------------------------
    def on_train_begin(self, trainer: Any) -> None:
        done = int(trainer.global_step)
        if done and self._load_existing(done):
            return
        self.points, self.hist, self.edges, self.images = [], {}, {}, {}
        self.record(trainer.model, epoch=_epochs_done(trainer, done), logs=None, step=done)

    def on_batch_begin(self, trainer: Any, epoch: int, step: int) -> None:
        done = int(trainer.global_step)  # updates so far; this step makes the next one
        if self.every_steps is None:
            if (epoch + 1) % self.every == 0 and step == trainer.steps_per_epoch - 1:
                self.remember(trainer.model)
            return
        if done % self.every_steps == 0 and done > self._last_step():
            self.record(trainer.model, epoch=_epochs_done(trainer, done), logs=None, step=done)
        if (done + 1) % self.every_steps == 0:
            self.remember(trainer.model)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        done = int(trainer.global_step)
        due = (epoch + 1) % self.every == 0 if self.every_steps is None \
            else done % self.every_steps == 0 and done > self._last_step()
        if due:
            self.record(trainer.model, epoch=epoch + 1, logs=logs, step=done)

    def on_train_end(self, trainer: Any) -> None:
        if getattr(trainer, "diverged", False) and self.points:
            self.points[-1]["diverged_after"] = {"epoch": int(trainer.epoch) + 1,
                                                 "step": int(trainer.step) + 1}
            self.write()

    # ---- recording --------------------------------------------------------------------
    def remember(self, model: Any) -> None:
        """Keep the weights before the next update, for that update's ‖Δw‖/‖w‖."""
        self._before_last = {k: np.array(v, dtype=np.float64) for k, v in model.params.items()}

    def _last_step(self) -> int:
        return self.points[-1].get("step", -1) if self.points else -1

    def record(self, model: Any, *, epoch: float, logs: dict[str, float] | None,
               step: int | None = None, write: bool = True) -> dict[str, Any]:
        """Measure one point on the probe batch, append it and rewrite both files (unless
        ``write`` is False: then :meth:`write` later).

        ``epoch``: epochs done (a fraction between epoch ends); ``step``: updates done.
        """
        measured = probe_pass(model, self.x, self.t)
        epoch = int(epoch) if float(epoch).is_integer() else round(float(epoch), 4)
        point: dict[str, Any] = {"epoch": epoch, "step": step, "loss": measured["loss"],
                                 "train_mode_loss": measured["train_mode_loss"],
                                 "logs": {k: json_number(v) for k, v in (logs or {}).items()},
                                 "layers": {}, "params": {}}
        for name, layer in measured["layers"].items():
            values = layer.pop("values")
            key = f"activation/{name}"
            self.edges.setdefault(key, _edges(layer["kind"], values))
            self.hist.setdefault(key, []).append(_histogram(values, self.edges[key]))
            point["layers"][name] = layer
        for name, param in measured["params"].items():
            w, g = param["weight"], param["grad"]
            stats: dict[str, Any] = {"grad_norm": param["grad_norm"],
                                     "weight_norm": json_number(norm(w)),
                                     "update_ratio": None, "change_ratio": None}
            if self._before_last is not None and name in self._before_last:
                stats["update_ratio"] = _ratio(w, self._before_last[name])
            if self._previous is not None and name in self._previous:
                stats["change_ratio"] = _ratio(w, self._previous[name])
            point["params"][name] = stats
            self.hist.setdefault(f"gradient/{name}", []).append(
                _histogram(np.log10(np.abs(g) + 1e-30), LOG_GRAD_EDGES))
            wkey = f"weight/{name}"
            self.edges.setdefault(wkey, _edges("weight", w))
            self.hist.setdefault(wkey, []).append(_histogram(w, self.edges[wkey]))
        self._conv_pictures(model, measured)
        self._previous = {k: v["weight"] for k, v in measured["params"].items()}
        self._before_last = None
        self.points.append(point)
        if write:
            self.write()
        return point

    def _conv_pictures(self, model: Any, measured: dict[str, Any]) -> None:
        first = first_conv(model)
        if first is None:
            return
        name, layer = first
        filters = np.array(layer.W, dtype=np.float32)  # (F, C, FH, FW)
        self.images.setdefault("filters_initial", filters)
        self.images["filters"] = filters
        self.images["probe_image"] = np.asarray(self.x[0], dtype=np.float32)
        with np.errstate(all="ignore"):
            maps = layer.forward(np.asarray(self.x[:1], dtype=model.dtype), False)[0]
        self.images["feature_maps"] = np.array(maps, dtype=np.float32)  # (F, OH, OW)
        self.images["conv_layer"] = np.array(name)

    # ---- files ------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        classes = int(self._classes())
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "probe": {"size": int(len(self.indices)), "seed": probe_seed(self.seed),
                          "every": self.every, "every_steps": self.every_steps},
                "unit": self.unit,
                "classes": classes, "ln_classes": math.log(classes) if classes > 1 else None,
                "saturation": SATURATION, "points": self.points}

    def _classes(self) -> int:
        t = np.asarray(self.t)
        return t.shape[1] if t.ndim == 2 else int(t.max()) + 1 if t.size else 0

    def write(self) -> None:
        arrays = {"probe_indices": self.indices, "log_grad_edges": LOG_GRAD_EDGES}
        arrays.update({f"hist/{k}": np.stack(v) for k, v in self.hist.items()})
        arrays.update({f"edges/{k}": v for k, v in self.edges.items()})
        arrays.update({f"image/{k}": v for k, v in self.images.items()})
        _files.atomic_write(self.directory / "diagnostics.npz",
                            lambda fh: np.savez_compressed(fh, **arrays), owner="diagnostics")
        write_text_atomic(self.directory / "diagnostics.json",
                          json.dumps(self.summary(), indent=1, allow_nan=False) + "\n")

    def _load_existing(self, done: int) -> bool:
        """Continue the files of a resumed run, dropping points after ``done`` updates."""
        try:
            summary, arrays = load(self.directory)
        except (FileNotFoundError, ValueError):
            return False
        keep = [i for i, p in enumerate(summary["points"]) if p.get("step", done + 1) <= done]
        self.points = [summary["points"][i] for i in keep]
        self.hist = {k[5:]: list(v[keep]) for k, v in arrays.items() if k.startswith("hist/")}
        self.edges = {k[6:]: v for k, v in arrays.items() if k.startswith("edges/")}
        self.images = {k[6:]: v for k, v in arrays.items() if k.startswith("image/")}
        return bool(self.points)


def _epochs_done(trainer: Any, done: int) -> float:
    return done / trainer.steps_per_epoch if trainer.steps_per_epoch else 0


def _ratio(w: np.ndarray, before: np.ndarray) -> float | None:
    base = norm(before)
    return json_number(norm(w - before) / base) if base > 0 else None


def load(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(``diagnostics.json`` as a dict, ``diagnostics.npz`` as ``{name: array}``)."""
    directory = Path(directory)
    path = directory / "diagnostics.json"
    if not path.is_file():
        raise FileNotFoundError(f"diagnostics: no diagnostics.json in {directory}; train with "
                                "--diagnostics")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise value_error("diagnostics", "diagnostics.json", "valid JSON", str(path)) from exc
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise value_error("diagnostics", "diagnostics.json", f"a {FORMAT} file", str(path))
    arrays: dict[str, np.ndarray] = {}
    npz = directory / "diagnostics.npz"
    if npz.is_file():
        npz_headers(npz, owner="diagnostics")  # sizes checked before anything is read
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    return summary, arrays
