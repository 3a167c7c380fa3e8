"""The book's random search (chapter 6), with no dependency beyond NumPy.

Each trial draws every parameter independently (``10 ** U(log10 low, log10 high)`` for log
ranges), trains the network on the training part and scores it by validation accuracy.
``narrow=(K, rounds)`` automates the book's manual step: after each round every range is
re-centred on the top-K trials so far and another ``trials`` are drawn from it.
All parameters are drawn in the parent from ``seed`` before any training, and every trial
seeds its own weights and batches from ``(seed, trial number)``, so the result is the same
with any number of ``workers``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from groundup._checks import check_array, check_choice, check_number, value_error
from groundup.search.pool import one_blas_thread, run_pool
from groundup.search.result import SearchResult
from groundup.search.space import OWNER, SearchSpace
from groundup.search.trial import SCORES, SearchData, run_trial, score_of, trial_seed

MAX_RETRIES = 3


def trial_defaults(hidden: Any, optimizer: str, batch_size: int) -> dict[str, Any]:
    """Defaults for parameters the space leaves out, from the keyword arguments."""
    sizes = [int(h) for h in hidden]
    if not sizes or min(sizes) < 1 or len(set(sizes)) != 1:
        raise value_error(OWNER, "hidden", "equal positive layer sizes, e.g. (100,) * 6",
                          tuple(hidden))
    check_number(OWNER, "batch_size", batch_size, low=1, integer=True)
    return {"hidden_size": sizes[0], "hidden_layers": len(sizes),
            "optimizer": str(optimizer).lower(), "batch_size": int(batch_size)}


def check_data(x_train: Any, t_train: Any, x_val: Any, t_val: Any) -> SearchData:
    for name, x, t in (("train", x_train, t_train), ("val", x_val, t_val)):
        check_array(OWNER, f"x_{name}", x, ndim=2)
        check_array(OWNER, f"t_{name}", t, ndim=(1, 2))
        if len(x) == 0 or len(x) != len(t):
            raise value_error(OWNER, f"len(t_{name})", f"equal to len(x_{name}) > 0",
                              f"={len(t)} vs {len(x)}")
    return SearchData(x_train, t_train, x_val, t_val)


def _evaluate(shared: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    return run_trial(task["params"], shared["data"], epochs=shared["epochs"],
                     seed=task["seed"], defaults=shared["defaults"])


def _line(trial: dict[str, Any]) -> str:
    params = ", ".join(f"{k}:{v:.3g}" if isinstance(v, float) else f"{k}:{v}"
                       for k, v in trial["params"].items())
    return f"trial {trial['number']} {trial['state']} val acc:{trial['score']:.4f} | {params}"


def random_search(space: SearchSpace, x_train: np.ndarray, t_train: np.ndarray,
                  x_val: np.ndarray, t_val: np.ndarray, *, trials: int = 100, epochs: int = 50,
                  seed: int = 0, hidden: Any = (100,) * 6, optimizer: str = "sgd",
                  batch_size: int = 100, workers: int = 1, score: str = "last",
                  narrow: tuple[int, int] | None = None, previous: SearchResult | None = None,
                  verbose: bool = False,
                  on_trial: Callable[[SearchResult], None] | None = None) -> SearchResult:
    """Random search over ``space``; ``trials`` COMPLETE trials per round.

    Args:
        space: what to draw (``SearchSpace.parse([...])``).
        x_train, t_train: the data each network trains on.
        x_val, t_val: the held-out part of the training data that scores a trial.
        trials: completed trials per round (a FAILed trial is run again).
        epochs: epochs per trial.
        seed: fixes every draw and every network: same seed, same result.
        hidden, optimizer, batch_size: the network and training used for parameters the
            space does not contain (the book's 6×100 ReLU net, SGD, 100).
        workers: processes on this host (1 = in this process).
        score: ``"last"`` (last-epoch validation accuracy, the book's) or ``"best"``.
        narrow: ``(K, rounds)``: ``rounds`` extra rounds, each on ranges narrowed to the
            top-K trials so far.
        previous: an earlier, interrupted result of the same call: its COMPLETE trials are
            kept and only the missing ones run.
        verbose: one line per finished trial on stderr.
        on_trial: called with the result so far after every finished or failed trial (the
            command line writes it, so that an interrupted search can be resumed).

    Returns:
        A ``SearchResult``; ``result.best`` is the COMPLETE trial with the highest score.
    """
    if not isinstance(space, SearchSpace):
        raise value_error(OWNER, "space", "a SearchSpace", space)
    data = check_data(x_train, t_train, x_val, t_val)
    check_number(OWNER, "trials", trials, low=1, integer=True)
    check_number(OWNER, "epochs", epochs, low=1, integer=True)
    check_number(OWNER, "seed", seed, integer=True)
    check_number(OWNER, "workers", workers, low=1, integer=True)
    check_choice(OWNER, "score", score, SCORES)
    keep, rounds = 1, 0
    if narrow is not None:
        keep, rounds = narrow
        check_number(OWNER, "narrow K", keep, low=1, integer=True)
        check_number(OWNER, "narrow ROUNDS", rounds, low=0, integer=True)
    defaults = trial_defaults(hidden, optimizer, batch_size)
    settings = {"engine": "random", "trials": trials, "epochs": epochs, "seed": seed,
                "score": score, "defaults": defaults, "narrow": list(narrow) if narrow else None,
                "n_train": len(x_train), "n_val": len(x_val), "rounds": []}
    done: dict[int, dict[str, Any]] = {}
    if previous is not None:
        done = {t["number"]: t for t in previous.trials if t["state"] == "COMPLETE"}
    records: list[dict[str, Any]] = list(done.values())
    failed: list[dict[str, Any]] = [t for t in (previous.trials if previous else [])
                                    if t["state"] == "FAIL"]
    round_space = space
    next_number = max([t["number"] for t in (previous.trials if previous else [])] +
                      [(rounds + 1) * trials - 1]) + 1
    attempts: dict[int, int] = {}
    payloads: dict[int, dict[str, Any]] = {}

    def on_done(number: int, record: dict[str, Any]) -> None:
        trial = {"number": number, "round": number // trials, "state": "COMPLETE",
                 "score": score_of(record["history"], score), **record}
        records.append(trial)
        if verbose:
            print(_line(trial), file=sys.stderr)
        if on_trial is not None:
            on_trial(SearchResult(records + failed, space, settings))

    def on_failed(number: int, reason: str) -> bool:
        nonlocal next_number
        failed.append({"number": next_number, "round": number // trials, "state": "FAIL",
                       "score": 0.0, "params": payloads[number]["params"],
                       "seed": payloads[number]["seed"], "epochs_run": 0,
                       "history": {"train_accuracy": [], "val_accuracy": [], "loss": []},
                       "retry_of": number, "reason": reason})
        next_number += 1
        attempts[number] = attempts.get(number, 0) + 1
        if verbose:
            print(f"trial {number} FAIL: {reason}", file=sys.stderr)
        if on_trial is not None:
            on_trial(SearchResult(records + failed, space, settings))
        return attempts[number] <= MAX_RETRIES

    shared = {"data": data, "epochs": epochs, "defaults": defaults}
    for rnd in range(rounds + 1):
        if rnd:
            top = sorted(records, key=lambda t: (-t["score"], t["number"]))[:keep]
            round_space = round_space.narrowed([t["params"] for t in top])
        settings["rounds"].append(round_space.specs())
        rng = np.random.default_rng([int(seed), rnd])
        draws = [round_space.sample(rng) for _ in range(trials)]
        tasks = [(rnd * trials + i, {"params": p, "seed": trial_seed(seed, rnd * trials + i)})
                 for i, p in enumerate(draws) if rnd * trials + i not in done]
        payloads.update(tasks)
        if workers == 1:
            with one_blas_thread():
                for number, task in tasks:
                    on_done(number, _evaluate(shared, task))
        else:
            run_pool(_evaluate, shared, tasks, workers, on_done, on_failed)
    missing = (rounds + 1) * trials - len(records)
    if missing:
        raise RuntimeError(f"search: {missing} trials failed {MAX_RETRIES + 1} times; see "
                           f"the FAIL trials' reasons: {failed[-1]['reason'] if failed else ''}")
    return SearchResult(records + failed, space, settings)

