"""The fast engine: the same models and optimizers, computed with every speed device.

The library's layers, models and optimizers (``groundup.layers``, ``conv``, ``models``,
``optimizers``) are the reference: plain NumPy, each written as its formula. This package
runs the same computations faster and is tested against them (``tests/test_fast_*.py``):

- :func:`compile` gives a model wrapper with the model's contract (``params``,
  ``gradient``, ``loss``, ``predict``, ``accuracy``) that computes the fast way, on the
  model's own arrays;
- :func:`optimizer` gives the fast update of an optimizer for a compiled model.

``Trainer`` uses both unless ``Trainer(fast=False)`` (``--no-fast`` on the command line);
``groundup.book`` runs the reference path. The core never imports this package, and
``import groundup`` does not load it. :func:`groundup.fast.trace.tracing` tells which fast
pieces ran.
"""

from __future__ import annotations

from groundup.fast.model import CompiledModel, compile  # noqa: A004 - the engine's verb
from groundup.fast.optim import FastOptimizer, optimizer
from groundup.fast.threads import get_num_threads, set_num_threads

__all__ = ["CompiledModel", "FastOptimizer", "compile", "get_num_threads", "optimizer",
           "set_num_threads"]
