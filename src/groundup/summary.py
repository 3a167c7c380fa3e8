"""``summary(model)``: a table of layers, output shapes and parameter counts, like Keras'.

Output shapes come from one evaluation-mode forward pass of a single zero example through
the layers (dropout off, batch norm on its running statistics: nothing in the model
changes). Trainable parameters are ``model.params``; non-trainable ones are the batch-norm
running statistics in ``model.state``, as Keras counts them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["summary", "rows"]


def _index(name: str) -> str:
    return "".join(ch for ch in name if ch.isdigit())


def rows(model: Any) -> list[dict[str, Any]]:
    """One dict per layer: name, kind, output shape, trainable and non-trainable counts."""
    out = np.zeros((1, *model.input_shape), dtype=model.dtype)
    found = []
    with np.errstate(all="ignore"):
        for name, layer in model.layers.items():
            out = layer.forward(out, False)
            index = _index(name)
            trainable = sum(int(np.size(getattr(layer, a))) for a in layer.param_names)
            frozen = sum(int(np.size(getattr(layer, a))) for a in layer.state_names)
            regs = [f"{attr}{index}: {model.regularizers[attr + index]!r}"
                    for attr in layer.param_names
                    if attr + index in getattr(model, "regularizers", {})]
            found.append({"name": name, "kind": type(layer).__name__,
                          "output_shape": (None, *out.shape[1:]), "trainable": trainable,
                          "non_trainable": frozen, "regularizers": regs})
    return found


def _count(n: int) -> str:
    return f"{n:,}"


def summary(model: Any) -> str:
    """The model as a text table (layers, output shapes, parameters, regularizers, dtype)."""
    table = rows(model)
    header = ("Layer (type)", "Output Shape", "Param #", "Regularizer")
    lines = [(f"{r['name']} ({r['kind']})", str(r["output_shape"]),
              _count(r["trainable"] + r["non_trainable"]), ", ".join(r["regularizers"]))
             for r in table]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "=" * len(fmt(tuple("x" * w for w in widths)))
    trainable = sum(r["trainable"] for r in table)
    frozen = sum(r["non_trainable"] for r in table)
    loss = type(getattr(model, "last_layer", None)).__name__
    text = [f'Model: "{type(model).__name__}"', rule, fmt(header), rule,
            *(fmt(line) for line in lines), rule,
            f"Total params: {_count(trainable + frozen)}",
            f"Trainable params: {_count(trainable)}",
            f"Non-trainable params: {_count(frozen)} (batch-norm running statistics)",
            f"Input shape: {(None, *model.input_shape)}; loss: {loss}; dtype: {model.dtype}"]
    return "\n".join(text)
