"""The order a compiled model computes in: the model's layers, with fast steps put in.

Each layer becomes a step with ``forward(x, train_flg)`` and ``backward(dout)``: the fast
counterpart of its class when the engine has one (matched by exact class, so a subclass with
its own code keeps it), otherwise the layer itself, which then runs its reference code. Two
rewrites keep the results: Convolution → ReLU → max pool over windows that tile becomes one
:class:`~groundup.fast.block.ConvReluPool` block (ReLU and pool in either order), and any
other ReLU → max pool runs as max pool → ReLU (:class:`~groundup.fast.conv.ReluPoolSwap`).
"""

from __future__ import annotations

from typing import Any

from groundup import conv as core_conv
from groundup import layers as core
from groundup.fast import conv, layers
from groundup.fast.block import ConvReluPool, fusable

COUNTERPARTS: dict[type, Any] = {
    core.Affine: layers.Affine,
    core.Relu: layers.Relu,
    core.Dropout: layers.Dropout,
    core.BatchNormalization: layers.BatchNormalization,
    core.SoftmaxWithLoss: layers.SoftmaxWithLoss,
    core_conv.Convolution: conv.Convolution,
    core_conv.Pooling: conv.Pooling,
}


def step(layer: Any) -> Any:
    """The fast counterpart of ``layer``, or ``layer`` itself when there is none."""
    counterpart = COUNTERPARTS.get(type(layer))
    return layer if counterpart is None else counterpart(layer)


def build(model_layers: list[Any]) -> list[Any]:
    """The steps that compute ``model_layers`` (see the module docstring)."""
    steps: list[Any] = []
    i = 0
    while i < len(model_layers):
        first, second, third = (model_layers[i:i + 3] + [None, None])[:3]
        if fusable(first, second, third):
            relu, pool = (second, third) if type(second) is core.Relu else (third, second)
            steps.append(ConvReluPool(first, relu, pool, (step(first), step(second),
                                                          step(third))))
            i += 3
        elif (type(first) is core.Relu and type(second) is core_conv.Pooling
                and second.mode == "max"):
            steps.append(conv.ReluPoolSwap(step(first), step(second)))
            i += 2
        else:
            steps.append(step(first))
            i += 1
    for block in steps:
        if isinstance(block, ConvReluPool):
            block.reuse_output = block is not steps[-1]  # the next step consumes it at once
    return steps
