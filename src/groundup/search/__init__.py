"""Hyperparameter search: the book's random search and Optuna (TPE/QMC with pruning),
on one process, ``workers`` processes on one host, or many hosts sharing a PostgreSQL study.

>>> space = SearchSpace.parse(["lr=log:1e-6:1e-2", "weight_decay=log:1e-8:1e-4"])
>>> sorted(space.params)
['lr', 'weight_decay']

``random_search`` needs only NumPy; ``optuna_search`` needs ``pip install 'groundup[search]'``.
"""

from groundup.search.plots import plot_best_n, plot_score_plane
from groundup.search.random_search import random_search
from groundup.search.result import SearchResult
from groundup.search.space import BOOK_SPACE, DEFAULTS, PARAM_TYPES, Param, SearchSpace
from groundup.search.trial import SearchData, build_model, run_trial, score_of, trial_seed


def optuna_search(*args, **kwargs):  # noqa: ANN002, ANN003 - signature in optuna_engine
    """See ``groundup.search.optuna_engine.optuna_search`` (imported on first use so that
    the random search never needs Optuna)."""
    from groundup.search.optuna_engine import optuna_search as impl

    return impl(*args, **kwargs)


__all__ = [
    "BOOK_SPACE",
    "DEFAULTS",
    "PARAM_TYPES",
    "Param",
    "SearchData",
    "SearchResult",
    "SearchSpace",
    "build_model",
    "optuna_search",
    "plot_best_n",
    "plot_score_plane",
    "random_search",
    "run_trial",
    "score_of",
    "trial_seed",
]
