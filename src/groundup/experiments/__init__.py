"""The seeds' experiments as named, seeded runs that write numbers and figures.

Each experiment is a module with a frozen ``Config`` dataclass whose defaults are the book's
settings, ``run(config) -> dict`` (JSON-ready numbers, no plotting), ``plot(results,
out_dir) -> list[Path]``, ``metrics(results) -> dict[str, float]`` (the scalars of the seed
table) and ``curves(results)`` (the series drawn as mean ± spread bands over seeds), plus
``QUICK``, the overrides of ``--quick``, and ``BOOK``, the book's result in one line (the
report puts it beside ours).

>>> from groundup.experiments import names
>>> names()[:3]
['gradient-descent', 'two-layer-net', 'gradient-check']
"""

from __future__ import annotations

import importlib
from types import ModuleType

from groundup._checks import check_choice

REGISTRY: dict[str, str] = {
    "gradient-descent": "groundup.experiments.gradient_descent",
    "two-layer-net": "groundup.experiments.two_layer_net",
    "gradient-check": "groundup.experiments.gradient_check",
    "optimizer-paths": "groundup.experiments.optimizer_paths",
    "optimizer-compare": "groundup.experiments.optimizer_compare",
    "weight-init-histogram": "groundup.experiments.weight_init_histogram",
    "weight-init-compare": "groundup.experiments.weight_init_compare",
    "batch-norm": "groundup.experiments.batch_norm",
    "overfit": "groundup.experiments.overfit",
    "hyperparameter-search": "groundup.experiments.hyperparameter_search",
    "convnet": "groundup.experiments.convnet",
}


def names() -> list[str]:
    """Experiment names in the book's order."""
    return list(REGISTRY)


def get(name: str) -> ModuleType:
    """The experiment module called ``name`` (ValueError listing the names otherwise)."""
    check_choice("experiment", "NAME", name, REGISTRY)
    return importlib.import_module(REGISTRY[name])


from groundup.experiments._runner import (  # noqa: E402 - needs get() above
    build_config,
    plot_run,
    run_experiment,
)

__all__ = ["REGISTRY", "build_config", "get", "names", "plot_run", "run_experiment"]
