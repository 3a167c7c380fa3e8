"""``compile(model)``: a model wrapper with the model's contract that computes the fast way.

:class:`CompiledModel` packs the model's parameters and state into one buffer
(:mod:`groundup.fast.pack`), computes through the steps of :mod:`groundup.fast.plan` and
keeps the model's contract: ``params``, ``state``, ``gradient``, ``loss``, ``predict``,
``accuracy``, ``last_layer``, ``last_loss``, ``regularization_loss``, ``check_finite``;
everything else is read from the model. Model and wrapper hold the same arrays, so an
update through either, saving, loading and the model's own (reference) ``gradient`` all see
the same weights.

Two more devices live here. A model with a convolution block computes inside
``threads.own_threads()`` (groundup's threads, a one-thread BLAS). And behind a first Affine
layer the finiteness check of the input is deferred: a NaN or Inf anywhere in a row of x
makes that row of x · W + b non-finite, so the (much smaller) output is checked, and x only
when that fails (it may be the weights that are not finite), which raises the model's own
error.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from groundup._checks import check_labels, type_error
from groundup.fast import layers as fast_layers
from groundup.fast import plan, threads
from groundup.fast.block import ConvReluPool
from groundup.fast.pack import Packed, owners, pack
from groundup.fast.trace import record


class CompiledModel:
    """``model``'s contract, computed by the fast engine on the model's own arrays."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._build()

    def _build(self) -> None:
        model = self.model
        self.packed: Packed | None = pack(model)
        where = owners(model)
        self._grad_refs = [(name, *where[id(p)]) for name, p in model.params.items()]
        self._layers = tuple(model.layers.values())
        self.steps = plan.build(list(self._layers))
        self.last_layer = plan.step(model.last_layer)
        self._threaded = any(isinstance(s, ConvReluPool) for s in self.steps)
        self._deferred = bool(self.steps) and isinstance(self.steps[0], fast_layers.Affine)

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet
            raise AttributeError(name)
        return getattr(self.model, name)

    # -- the model's own state, shared -------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self.model.state

    @property
    def check_finite(self) -> bool:
        return self.model.check_finite

    @check_finite.setter
    def check_finite(self, value: bool) -> None:
        self.model.check_finite = value

    @property
    def last_loss(self) -> float | None:
        return self.model.last_loss

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.model.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.model.output_shape

    def regularization_loss(self) -> float:
        return self.model.regularization_loss()

    # -- computing -----------------------------------------------------------------------
    def _context(self) -> Any:
        if self._layers != tuple(self.model.layers.values()):
            self._build()  # layers were added since: new steps (and arrays packed again)
        return threads.own_threads() if self._threaded else contextlib.nullcontext()

    def predict(self, x: np.ndarray, train_flg: bool = False,
                batch_size: int | None = None) -> np.ndarray:
        """The model's ``predict``: scores before the loss layer. Shapes: (N, K)."""
        x = self.model._input(x)
        if batch_size is not None and not train_flg and x.shape[0] > batch_size:
            return np.concatenate([self.predict(x[i:i + batch_size])
                                   for i in range(0, x.shape[0], batch_size)])
        with self._context():
            steps = self.steps
            if self.check_finite and self._deferred:
                record("check.deferred")
                with np.errstate(invalid="ignore", over="ignore"):
                    out = steps[0].forward(x, train_flg)
                if not np.isfinite(out).all():
                    self.model._check_finite(x)
                x, steps = out, steps[1:]
            elif self.check_finite:
                self.model._check_finite(x)
            for step in steps:
                x = step.forward(x, train_flg)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False) -> float:
        """Data loss (averaged over the batch) plus the regularization penalty."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self.model.regularization_loss()

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """The model's ``gradient``: ``{name: dLoss/dparam}``; sets ``last_loss``."""
        model = self.model
        with self._context():
            model.last_loss = self.loss(x, t, train_flg=True)
            dout = self.last_layer.backward(1)
            for step in reversed(self.steps):
                dout = step.backward(dout)
        grads = {name: getattr(layer, "d" + attr) for name, layer, attr in self._grad_refs}
        for name, reg in model.regularizers.items():
            reg.add_grad(model.params[name], grads[name])
        return grads

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> float:
        """Fraction of samples whose arg-max score equals the label (t: labels or one-hot)."""
        y = self.predict(x, train_flg=False, batch_size=batch_size)
        labels = check_labels(type(self.model).__name__, t, y.shape[0], y.shape[1])
        return float(np.mean(y.argmax(axis=1) == labels)) if len(labels) else 0.0

    def __repr__(self) -> str:
        return f"CompiledModel({self.model!r})"


def compile(model: Any) -> CompiledModel:  # noqa: A001 - the engine's verb
    """Wrap a :class:`groundup.models.Sequential` (or a book network) for fast training."""
    from groundup.models import Sequential

    if isinstance(model, CompiledModel):
        return model
    if not isinstance(model, Sequential):
        raise type_error("fast.compile", "model", "a groundup.models.Sequential (or a book "
                         "network)", model, "train other models with Trainer(fast=False).")
    return CompiledModel(model)
