"""``Sequential``: a model built layer by layer, on the book's contract.

``params``, ``gradient``, ``loss``, ``predict``, ``accuracy`` (docs/design.md), built with a
per-layer initializer and regularizer (what seed 002 does with ``addlayer``). Parameter
names follow the book: ``W1``/``b1`` for the first Affine or Convolution, ``gamma1``/
``beta1`` for the first batch norm, and so on. ``predict`` and ``gradient`` are a loop over
the layers; ``groundup.fast.compile`` computes the same faster.

Two conventions share one implementation (docs/design.md): ``convention="groundup"`` uses
inverted dropout and PyTorch's batch-norm defaults (eps 1e-5, running momentum 0.1 in
PyTorch's sense, unbiased running variance); ``convention="book"`` uses scale-at-test
dropout and the book's batch norm (eps 1e-6, momentum 0.9, biased running variance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from groundup import initializers, regularizers
from groundup._checks import (
    check_array,
    check_choice,
    check_labels,
    check_number,
    type_error,
    value_error,
)
from groundup.conv import Convolution, Pooling
from groundup.layers import (
    ACTIVATIONS,
    Affine,
    BatchNormalization,
    Dropout,
    Flatten,
    Layer,
    MSELoss,
    SoftmaxWithLoss,
)
from groundup.numerical import numerical_gradient
from groundup.rng import make_rng

CONVENTIONS = ("groundup", "book")
LOSSES = ("softmax_cross_entropy", "mse")
LAYER_KINDS = ("dense", "conv", "pool", "batchnorm", "dropout", "flatten", *ACTIVATIONS)


class Sequential:
    """A stack of layers ending in a loss layer.

    Example::

        model = Sequential((784,), rng=0)
        model.add("dense", units=100, init="he_normal", regularizer=L2(0.01))
        model.add("relu").add("dropout", dropout_ratio=0.2)
        model.add("dense", units=10, init="glorot_uniform")

    Attributes:
        layers: ordered ``{name: layer}`` ('Affine1', 'Relu1', 'BatchNorm1', ...).
        params: ``{name: array}``, the very arrays the layers compute with.
        state: batch-norm running statistics (``running_mean1``, ``running_var1``, ...).
    """

    def __init__(self, input_shape: int | tuple[int, ...], *, loss: str = "softmax_cross_entropy",
                 rng: Any = None, dtype: Any = np.float32, convention: str = "groundup",
                 layers: list[dict[str, Any]] | None = None) -> None:
        shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else input_shape
        self.input_shape = tuple(int(s) for s in shape)
        if not self.input_shape or min(self.input_shape) < 1:
            raise value_error("Sequential", "input_shape", "positive sizes", input_shape)
        self.loss_name = check_choice("Sequential", "loss", loss, LOSSES)
        self.convention = check_choice("Sequential", "convention", convention, CONVENTIONS)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise value_error("Sequential", "dtype", "float32 or float64", str(self.dtype))
        self.rng = make_rng(rng)
        self.layers: dict[str, Layer] = {}
        self.params: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.regularizers: dict[str, regularizers.Regularizer] = {}
        self.last_layer: Layer = SoftmaxWithLoss() if loss == "softmax_cross_entropy" else MSELoss()
        self.last_loss: float | None = None
        self.check_finite = True
        self.specs: list[dict[str, Any]] = []
        self._refs: list[tuple[str, Layer, str]] = []  # (param name, layer, attribute)
        self._counts: dict[str, int] = {}
        self._shape = self.input_shape  # output shape of the stack so far, without N
        for spec in layers or []:
            spec = dict(spec)
            if spec.get("kind") == "dropout" and "ratio" in spec:  # older files' spelling
                spec["dropout_ratio"] = spec.pop("ratio")
            self.add(spec.pop("kind"), **spec)

    # ---- building -------------------------------------------------------------------
    def _name(self, prefix: str) -> int:
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return self._counts[prefix]

    def _register(self, layer: Layer, prefix: str, index: int, reg: Any = None,
                  bias_reg: Any = None) -> None:
        self.layers[f"{prefix}{index}"] = layer
        for attr in layer.param_names:
            name = f"{attr}{index}"
            self.params[name] = getattr(layer, attr)  # the very array: updates reach the layer
            self._refs.append((name, layer, attr))
        for attr in layer.state_names:
            self.state[f"{attr}{index}"] = getattr(layer, attr)
        if reg is not None:
            self.regularizers[f"W{index}"] = regularizers.get(reg)
        if bias_reg is not None:
            self.regularizers[f"b{index}"] = regularizers.get(bias_reg)

    def add(self, kind: str, **kwargs: Any) -> Sequential:
        """Append a layer by kind: 'dense', 'conv', 'pool', 'batchnorm', 'dropout',
        'flatten', or an activation ('relu', 'sigmoid', 'tanh', 'leaky_relu').

        Keyword arguments by kind:
            dense: units, init='he_normal', regularizer=None, bias_regularizer=None
            conv: filters, kernel_size, stride=1, pad=0, init='he_normal', regularizer=None,
                bias_regularizer=None
            pool: size, stride=None (= size), pad=0, mode='max' | 'avg'
            batchnorm: momentum=0.9 (share kept), eps=None (convention's default)
            dropout: dropout_ratio
            leaky_relu: alpha=0.01
        """
        if not isinstance(kind, str):
            raise type_error("Sequential.add", "kind", "a layer kind name", kind)
        kind = check_choice("Sequential.add", "kind", kind.lower(), LAYER_KINDS)
        builder = getattr(self, f"_add_{kind}", None)
        try:
            if builder is not None:
                builder(**kwargs)
            else:
                layer = ACTIVATIONS[kind](**kwargs)
                self._register(layer, kind.title().replace("_", ""), self._name(kind))
        except TypeError as exc:
            if "unexpected keyword" in str(exc) or "missing" in str(exc):
                raise type_error("Sequential.add", "the arguments of " + repr(kind),
                                 "those listed in Sequential.add's docstring",
                                 sorted(kwargs)) from exc
            raise
        self.specs.append({"kind": kind, **{k: jsonable(v) for k, v in kwargs.items()}})
        if len(self.specs) == 1 and hasattr(next(iter(self.layers.values())), "needs_input_grad"):
            next(iter(self.layers.values())).needs_input_grad = False  # no one uses dx of layer 1
        return self

    def _add_dense(self, units: int, init: Any = "he_normal", regularizer: Any = None,
                   bias_regularizer: Any = None) -> None:
        check_number("Sequential.add('dense')", "units", units, low=1, integer=True)
        fan_in = int(np.prod(self._shape))
        W = initializers.initialize(init, (fan_in, units), self.rng, self.dtype)
        b = np.zeros(units, dtype=self.dtype)
        index = self._name("W")
        self._register(Affine(W, b), "Affine", index, regularizer, bias_regularizer)
        self._shape = (int(units),)

    def _add_conv(self, filters: int, kernel_size: int | tuple[int, int], stride: int = 1,
                  pad: int = 0, init: Any = "he_normal", regularizer: Any = None,
                  bias_regularizer: Any = None) -> None:
        if len(self._shape) != 3:
            raise value_error("Sequential.add('conv')", "input shape", "(C, H, W)",
                              f"={self._shape}", "convolutions need image-shaped input.")
        check_number("Sequential.add('conv')", "filters", filters, low=1, integer=True)
        fh, fw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        c, h, w = self._shape
        out_h = (h + 2 * pad - fh) // stride + 1
        out_w = (w + 2 * pad - fw) // stride + 1
        if out_h < 1 or out_w < 1:
            raise value_error("Sequential.add('conv')", "kernel_size",
                              f"at most the padded input {h + 2 * pad}x{w + 2 * pad}", kernel_size)
        W = initializers.initialize(init, (filters, c, fh, fw), self.rng, self.dtype)
        b = np.zeros(filters, dtype=self.dtype)
        index = self._name("W")
        self._register(Convolution(W, b, stride, pad), "Conv", index, regularizer,
                       bias_regularizer)
        self._shape = (int(filters), out_h, out_w)

    def _add_pool(self, size: int | tuple[int, int], stride: int | None = None, pad: int = 0,
                  mode: str = "max") -> None:
        if len(self._shape) != 3:
            raise value_error("Sequential.add('pool')", "input shape", "(C, H, W)",
                              f"={self._shape}")
        ph, pw = (size, size) if np.isscalar(size) else size
        stride = ph if stride is None else stride
        layer = Pooling(ph, pw, stride, pad, mode=mode)
        c, h, w = self._shape
        self._shape = (c, (h + 2 * pad - ph) // stride + 1, (w + 2 * pad - pw) // stride + 1)
        if min(self._shape) < 1:
            raise value_error("Sequential.add('pool')", "size", "at most the input size", size)
        self._register(layer, "Pool", self._name("pool"))

    def _add_batchnorm(self, momentum: float = 0.9, eps: float | None = None) -> None:
        book = self.convention == "book"
        dim = self._shape[0]
        layer = BatchNormalization(
            np.ones(dim, dtype=self.dtype), np.zeros(dim, dtype=self.dtype), momentum,
            eps=(1e-6 if book else 1e-5) if eps is None else eps,
            unbiased_running_var=not book)
        self._register(layer, "BatchNorm", self._name("gamma"))

    def _add_dropout(self, dropout_ratio: float) -> None:
        layer = Dropout(dropout_ratio, inverted=self.convention == "groundup", rng=self.rng)
        self._register(layer, "Dropout", self._name("dropout"))

    def _add_flatten(self) -> None:
        self._register(Flatten(), "Flatten", self._name("flatten"))
        self._shape = (int(np.prod(self._shape)),)

    # ---- computing ------------------------------------------------------------------
    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._shape

    def _input(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked against the model's input shape, in the model's dtype."""
        owner = type(self).__name__
        check_array(owner, "x", x, finite=False)
        want = self.input_shape
        dense_first = not self.specs or self.specs[0]["kind"] != "conv"
        ok = (x.ndim >= 2 and math.prod(x.shape[1:]) == math.prod(want)) if dense_first \
            else x.shape[1:] == want
        if not ok:
            raise value_error(owner, "x.shape", f"(N, {', '.join(map(str, want))})", f"={x.shape}",
                              "check the data matches the model's input size.")
        return x.astype(self.dtype, copy=False)

    def _check_finite(self, x: np.ndarray) -> None:
        if not np.isfinite(x).all():
            raise value_error(type(self).__name__, "x", "finite (no NaN or Inf)",
                              "=array with non-finite values")

    def predict(self, x: np.ndarray, train_flg: bool = False,
                batch_size: int | None = None) -> np.ndarray:
        """Scores before the loss layer (logits for softmax models). Shapes: (N, K).

        With ``batch_size``, an evaluation pass runs that many samples at a time.
        """
        x = self._input(x)
        if self.check_finite:
            self._check_finite(x)
        if batch_size is not None and not train_flg and x.shape[0] > batch_size:
            return np.concatenate([self.predict(x[i:i + batch_size])
                                   for i in range(0, x.shape[0], batch_size)])
        for layer in self.layers.values():
            x = layer.forward(x, train_flg)
        return x

    def regularization_loss(self) -> float:
        return sum(reg.penalty(self.params[name]) for name, reg in self.regularizers.items())

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False) -> float:
        """Data loss (averaged over the batch) plus the regularization penalty."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self.regularization_loss()

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Backpropagation: ``{name: dLoss/dparam}`` for every array in ``params``.

        The loss of this very forward pass is kept in ``last_loss`` so a trainer can log it
        without a second forward pass.
        """
        self.last_loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {name: getattr(layer, "d" + attr) for name, layer, attr in self._refs}
        for name, reg in self.regularizers.items():
            reg.add_grad(self.params[name], grads[name])
        return grads

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Central-difference gradient of ``loss(x, t, train_flg=True)`` for every param."""
        def f(_: np.ndarray) -> float:
            return self.loss(x, t, train_flg=True)

        return {name: numerical_gradient(f, p) for name, p in self.params.items()}

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> float:
        """Fraction of samples whose arg-max score equals the label (t: labels or one-hot)."""
        y = self.predict(x, train_flg=False, batch_size=batch_size)
        labels = check_labels(type(self).__name__, t, y.shape[0], y.shape[1])
        return float(np.mean(y.argmax(axis=1) == labels)) if len(labels) else 0.0

    def summary(self) -> str:
        """A Keras-style table: layers, output shapes, parameter counts, regularizers, dtype
        (:func:`groundup.summary.summary`)."""
        from groundup.summary import summary

        return summary(self)

    def get_config(self) -> dict[str, Any]:
        """Everything needed to rebuild the architecture (arrays excluded)."""
        return {"class": "Sequential", "args": {
            "input_shape": list(self.input_shape), "loss": self.loss_name,
            "dtype": self.dtype.name, "convention": self.convention,
            "layers": [dict(spec) for spec in self.specs]}}

    def __repr__(self) -> str:
        body = ", ".join(self.layers)
        return f"{type(self).__name__}(input_shape={self.input_shape}, layers=[{body}])"


def jsonable(value: Any) -> Any:
    """``value`` as it goes into a JSON config: regularizers by config, tuples as lists."""
    if isinstance(value, regularizers.Regularizer):
        return value.get_config()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
