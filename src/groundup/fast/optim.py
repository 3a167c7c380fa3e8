"""``optimizer(opt, compiled)``: the fast update of an optimizer."""

from __future__ import annotations

from typing import Any


class FastOptimizer:
    """Updates ``params`` as ``opt`` does; ``opt`` keeps the hyperparameters and state."""

    def __init__(self, opt: Any, compiled: Any = None) -> None:
        self.opt = opt
        self.compiled = compiled

    def update(self, params: Any, grads: Any) -> None:
        self.opt.update(params, grads)


def optimizer(opt: Any, compiled: Any = None) -> FastOptimizer:
    """The fast update for ``opt`` (a :class:`groundup.optimizers.Optimizer`)."""
    return FastOptimizer(opt, compiled)
