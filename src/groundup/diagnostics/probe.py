"""The probe pass of a diagnostics point: the probe batch, and one training step's forward
and backward on it by the reference layers that changes nothing (see the package).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["probe_seed", "probe_indices", "probe_pass", "first_conv", "norm", "json_number",
           "SKIPPED_KINDS"]

SKIPPED_KINDS = ("Dropout", "Flatten")  # identities in evaluation mode


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


def json_number(value: float) -> float | None:
    """A JSON number, or null for NaN/inf (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def norm(a: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def _activation_stats(kind: str, y: np.ndarray) -> dict[str, float | None]:
    flat = y.reshape(len(y), -1)  # (N, units)
    stats = {"mean": json_number(flat.mean(dtype=np.float64)),
             "std": json_number(flat.std(dtype=np.float64))}
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
                     "grad_norm": json_number(norm(grads[name]))}
              for name, p in model.params.items()}
    return {"layers": layers, "params": params, "loss": json_number(eval_loss),
            "train_mode_loss": json_number(train_loss)}


def first_conv(model: Any) -> tuple[str, Any] | None:
    for name, layer in model.layers.items():
        if type(layer).__name__ == "Convolution":
            return name, layer
    return None
