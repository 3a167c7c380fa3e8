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
from groundup.io import npz_headers, write_text_atomic

__all__ = ["Diagnostics", "probe_indices", "probe_seed", "probe_pass", "load"]

FORMAT = "groundup.diagnostics"
FORMAT_VERSION = 1
BINS = 40
# Gradients span many orders of magnitude; their histogram is over log10|g|.
LOG_GRAD_EDGES = np.linspace(-12.0, 2.0, BINS + 1)
SKIPPED_KINDS = ("Dropout", "Flatten")  # identities in evaluation mode
SATURATION = {"Sigmoid": "y < 0.01 or y > 0.99", "Tanh": "|y| > 0.99"}


def probe_seed(seed: int) -> list[int]:
    """The probe's own seed sequence, derived from the run's ``seed``."""
    return [int(seed), 0x9E0BE]


def probe_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` indices into ``labels``, each class in proportion to its share, sorted.

    Each class gets floor(size · share) places; the places left go to the classes with the
    largest remainders, and the examples inside a class are drawn without replacement.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    size = min(int(size), len(labels))
    rng = np.random.default_rng(probe_seed(seed))
    classes, counts = np.unique(labels, return_counts=True)
    exact = size * counts / counts.sum()
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[:size - take.sum()]:
        take[i] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
              for c, k in zip(classes, take, strict=True) if k]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)


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


def _number(value: float) -> float | None:
    """A JSON number, or null for NaN/inf (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def _activation_stats(kind: str, y: np.ndarray) -> dict[str, float | None]:
    flat = y.reshape(len(y), -1)  # (N, units)
    stats = {"mean": _number(flat.mean(dtype=np.float64)),
             "std": _number(flat.std(dtype=np.float64))}
    if kind == "Relu":
        zero = flat == 0
        stats["zero_fraction"] = float(zero.mean())
        # a unit (feature, or channel of a feature map) that is zero for every probe example
        units = zero.reshape(len(y), y.shape[1], -1).all(axis=(0, 2)) if y.ndim == 4 \
            else zero.all(axis=0)
        stats["dead_fraction"] = float(units.mean())
    if kind == "Sigmoid":
        stats["saturated_fraction"] = float(((flat < 0.01) | (flat > 0.99)).mean())
    if kind == "Tanh":
        stats["saturated_fraction"] = float((np.abs(flat) > 0.99).mean())
    return stats


def _eval_forward(layer: Any, x: np.ndarray) -> np.ndarray:
    return layer.forward(x, False)


def _dropout_backward(layer: Any, dout: np.ndarray) -> np.ndarray:
    """Evaluation-mode dropout's gradient: identity (inverted) or the book's (1 - p)."""
    return dout if layer.inverted else dout * dout.dtype.type(1 - layer.dropout_ratio)


def _gradients(model: Any, x: np.ndarray, t: np.ndarray
               ) -> tuple[float, dict[str, Any], dict[str, np.ndarray]]:
    """(loss, {layer: its output}, {param: gradient}) by the reference layers: the forward
    and backward of a training step on the probe, with dropout off.

    The caller saves and restores the batch-norm running statistics, which a training-mode
    batch-norm forward moves.
    """
    layers, outputs, out = list(model.layers.values()), {}, x
    for name, layer in model.layers.items():
        out = _eval_forward(layer, out) if type(layer).__name__ == "Dropout" \
            else layer.forward(out, True)
        outputs[name] = np.array(out, copy=True)  # before a backward could touch it
    loss = float(model.last_layer.forward(out, t))
    dout = model.last_layer.backward(1)
    for layer in reversed(layers):
        if dout is None:
            break
        dout = _dropout_backward(layer, dout) if type(layer).__name__ == "Dropout" \
            else layer.backward(dout)
    grads = {}
    for name, layer, attr in _param_refs(model):
        grads[name] = np.array(getattr(layer, "d" + attr), dtype=np.float64)
    for name, reg in getattr(model, "regularizers", {}).items():
        reg.add_grad(model.params[name].astype(np.float64), grads[name])
    return loss, outputs, grads


def _param_refs(model: Any) -> list[tuple[str, Any, str]]:
    """(param name, layer, attribute) for every parameter, from the layer names' numbers."""
    refs = getattr(model, "_refs", None)
    if refs is not None:
        return list(refs)
    found = []
    for lname, layer in model.layers.items():
        index = "".join(ch for ch in lname if ch.isdigit())
        found += [(f"{attr}{index}", layer, attr) for attr in layer.param_names]
    return found


def _saved_state(model: Any) -> tuple[list[tuple[Any, str, np.ndarray]], Any]:
    arrays = [(layer, attr, np.array(getattr(layer, attr), copy=True))
              for layer in model.layers.values() for attr in layer.state_names]
    rng = getattr(model, "rng", None)
    bit = getattr(rng, "bit_generator", None)
    return arrays, (bit.state if bit is not None else None)


def _restore_state(model: Any, saved: tuple[list[tuple[Any, str, np.ndarray]], Any]) -> None:
    arrays, rng_state = saved
    for layer, attr, value in arrays:
        np.copyto(getattr(layer, attr), value)
    if rng_state is not None:
        model.rng.bit_generator.state = rng_state


def probe_pass(model: Any, x: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    """Everything one diagnostics point measures, as ``{"layers", "params", "loss", ...}``.

    ``layers[name]`` holds ``kind``, the statistics and ``values`` (the activations, as
    the training step sees them: batch norm on the probe's own statistics, dropout off);
    ``params[name]`` holds ``grad`` and ``weight`` arrays (float64 copies) and ``grad_norm``;
    ``loss`` is the evaluation-mode loss (batch norm on its running statistics), the one
    ``predict`` would give.
    """
    x = np.asarray(x, dtype=model.dtype)
    saved = _saved_state(model)
    try:
        with np.errstate(all="ignore"):
            train_loss, outputs, grads = _gradients(model, x, t)
            eval_loss = train_loss  # without batch norm the two modes compute the same
            if any(type(layer).__name__ == "BatchNormalization"
                   for layer in model.layers.values()):
                out = x
                for layer in model.layers.values():
                    out = _eval_forward(layer, out)
                eval_loss = float(model.last_layer.forward(out, t))
            layers = {}
            for name, out in outputs.items():
                kind = type(model.layers[name]).__name__
                if kind not in SKIPPED_KINDS:
                    layers[name] = {"kind": kind, "values": out,
                                    **_activation_stats(kind, out)}
    finally:
        _restore_state(model, saved)
    params = {name: {"grad": grads[name], "weight": np.array(p, dtype=np.float64),
                     "grad_norm": _number(_norm(grads[name]))}
              for name, p in model.params.items()}
    return {"layers": layers, "params": params, "loss": _number(eval_loss),
            "train_mode_loss": _number(train_loss)}


def _first_conv(model: Any) -> tuple[str, Any] | None:
    for name, layer in model.layers.items():
        if type(layer).__name__ == "Convolution":
            return name, layer
    return None


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
                                 "logs": {k: _number(v) for k, v in (logs or {}).items()},
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
                                     "weight_norm": _number(_norm(w)),
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
        first = _first_conv(model)
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
    base = _norm(before)
    return _number(_norm(w - before) / base) if base > 0 else None


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
