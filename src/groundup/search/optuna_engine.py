"""Search with Optuna: TPE or QMC sampling, median or Hyperband pruning on per-epoch
validation accuracy, and a threshold pruner for diverging trials.

Storage decides how far it scales:

- none: in memory, this process only;
- a file path: an Optuna journal file, safe for ``workers`` processes on one host;
- ``postgresql://user:pass@host:port/db``: one study shared by every machine that runs the
  same command; a heartbeat thread marks each running trial alive, and a trial whose
  machine stops beating for ``grace_period`` seconds is failed and queued again with the
  same parameters.

Exactly ``trials`` trials finish (COMPLETE or PRUNED) however many processes or machines
work on the study: a worker only starts a trial while finished + running + queued trials
are fewer than ``trials``, and a trial that finds ``trials`` unfinished-or-finished trials
numbered below its own ends at once as FAIL (user attribute ``surplus``) without training.
FAILed trials never count.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from groundup._checks import check_choice, check_number, message, value_error
from groundup.search.pool import blas_threads_env, one_blas_thread
from groundup.search.random_search import check_data, trial_defaults
from groundup.search.result import SearchResult
from groundup.search.space import OWNER, SearchSpace
from groundup.search.storage import (
    close_storage,
    import_optuna,
    is_url,
    make_storage,
    mask_password,
    quiet_optuna,
)
from groundup.search.trial import SCORES, SearchData, run_trial, score_of, trial_seed

SAMPLERS = ("tpe", "qmc")
PRUNERS = ("median", "hyperband", "none")
SPACE_ATTR = "groundup_search"
MAX_RESTARTS = 10


class SurplusTrial(Exception):
    """A trial started after the study already had its ``trials`` trials."""


def make_sampler(name: str, seed: int) -> Any:
    optuna = import_optuna()
    with quiet_optuna():
        if name == "qmc":
            try:
                import scipy  # noqa: F401 - Optuna's QMC sampler draws with scipy.stats.qmc
            except ModuleNotFoundError as exc:
                raise RuntimeError(message(OWNER, "--sampler", "tpe unless SciPy is installed",
                                           "qmc", "pip install scipy")) from exc
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
        return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, epochs: int, classes: int) -> Any:
    """The chosen pruner plus thresholds: NaN validation accuracy (the loss diverged) at
    any epoch, and (for 10 epochs or more) accuracy still below 1.5 × chance after half
    the epochs."""
    optuna = import_optuna()
    main: list[Any] = []
    if name == "median":
        main.append(optuna.pruners.MedianPruner(n_startup_trials=5,
                                                n_warmup_steps=max(1, epochs // 10)))
    elif name == "hyperband":
        main.append(optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                   reduction_factor=3))
    if name == "none":
        return optuna.pruners.NopPruner()
    pruners = [*main, optuna.pruners.ThresholdPruner(lower=0.0)]
    if epochs >= 10:  # shorter runs have not left chance level by half-time
        pruners.append(optuna.pruners.ThresholdPruner(lower=1.5 / classes,
                                                      n_warmup_steps=epochs // 2))
    return _AnyPruner(pruners)


def _any_pruner_class() -> type:
    optuna = import_optuna()

    class AnyPruner(optuna.pruners.BasePruner):
        """Prunes when any of its pruners would."""

        def __init__(self, pruners: list[Any]) -> None:
            self.pruners = pruners

        def prune(self, study: Any, trial: Any) -> bool:
            return any(p.prune(study, trial) for p in self.pruners)

    return AnyPruner


def _AnyPruner(pruners: list[Any]) -> Any:  # noqa: N802 - a class built on first use
    return _any_pruner_class()(pruners)


def _counts(trials: list[Any]) -> dict[str, int]:
    counts = {"COMPLETE": 0, "PRUNED": 0, "RUNNING": 0, "WAITING": 0, "FAIL": 0}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    counts["finished"] = counts["COMPLETE"] + counts["PRUNED"]
    return counts


def _suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.params.items():
        if p.kind == "log":
            params[name] = trial.suggest_float(name, p.low, p.high, log=True)
        elif p.kind == "uniform":
            params[name] = trial.suggest_float(name, p.low, p.high)
        elif p.kind == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high))
        elif p.kind == "choice":
            params[name] = trial.suggest_categorical(name, list(p.choices))
        else:
            params[name] = p.choices[0]
    return params


def _objective(shared: dict[str, Any]) -> Any:
    optuna = import_optuna()
    space = SearchSpace.from_dict(shared["space"])
    data: SearchData = shared["data"]
    epochs, trials = shared["epochs"], shared["trials"]

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker_pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        before = trial.study.get_trials(deepcopy=False)
        taken = sum(1 for t in before if t.number < trial.number and t.state.name != "FAIL")
        if taken >= trials:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"trial {trial.number}: the study already has {trials} trials")
        params = _suggest(trial, space)
        seed = trial_seed(shared["seed"], trial.number)

        def on_epoch(epoch: int, logs: dict[str, float]) -> bool:
            trial.report(float(logs["val_accuracy"]), epoch + 1)
            return trial.should_prune()

        # without a pruner the per-epoch reports would only cost storage writes
        report = on_epoch if shared["pruner"] != "none" else None
        record = run_trial(params, data, epochs=epochs, seed=seed, defaults=shared["defaults"],
                           on_epoch=report)
        pruned = record["stopped"]
        if record["diverged"] and report is not None:
            trial.report(math.nan, record["epochs_run"] + 1)
            pruned = pruned or trial.should_prune()
        for key in ("history", "seed", "epochs_run", "duration_s", "diverged"):
            trial.set_user_attr(key, record[key])
        if pruned:
            raise optuna.TrialPruned()
        return score_of(record["history"], shared["score"])

    return objective


def _load_study(shared: dict[str, Any], worker: int, storage: Any = None) -> Any:
    optuna = import_optuna()
    if storage is None:
        storage = make_storage(shared["storage"], workers=shared["workers"],
                               heartbeat_interval=shared["heartbeat_interval"],
                               grace_period=shared["grace_period"])
    seed = shared["seed"]
    if shared["sampler"] != "qmc" and (shared["workers"] > 1 or is_url(shared["storage"])):
        # Processes sharing a study must not draw the same TPE start-up points; QMC keeps
        # one seed everywhere because its Sobol sequence is indexed through the study.
        seed = int(np.random.SeedSequence([seed, worker, os.getpid()]).generate_state(1)[0])
    with quiet_optuna():
        return optuna.load_study(study_name=shared["study"], storage=storage,
                                 sampler=make_sampler(shared["sampler"], seed),
                                 pruner=make_pruner(shared["pruner"], shared["epochs"],
                                                    shared["data"].classes))


def work(shared: dict[str, Any], worker: int = 0, storage: Any = None) -> None:
    """One worker: run trials of the study until it has ``trials`` finished ones
    (``storage``: an open storage to reuse, e.g. the in-memory one)."""
    study = _load_study(shared, worker, storage)
    objective = _objective(shared)
    heartbeat = shared["storage"] is not None and is_url(shared["storage"])
    with one_blas_thread(), quiet_optuna():
        from optuna.storages import fail_stale_trials

        while True:
            counts = _counts(study.get_trials(deepcopy=False))
            if counts["finished"] >= shared["trials"]:
                return
            if counts["WAITING"] == 0 and counts["finished"] + counts["RUNNING"] >= \
                    shared["trials"]:
                if not heartbeat:
                    return
                # another worker's trial is running: wait for it, or for it to go stale
                fail_stale_trials(study)
                time.sleep(min(1.0, shared["heartbeat_interval"]))
                continue
            study.optimize(objective, n_trials=1, catch=(SurplusTrial,),
                           gc_after_trial=False)


def _work_process(shared: dict[str, Any], worker: int) -> None:
    try:
        work(shared, worker)
    except KeyboardInterrupt:
        sys.exit(130)


def _fail_trials_of(study: Any, pid: int) -> list[int]:
    """Fail the RUNNING trials of dead worker ``pid`` and queue each again (same params)."""
    optuna = import_optuna()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("worker_pid") != pid or t.user_attrs.get("host") != \
                socket.gethostname():
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "failed_by", "parent: worker died")
            study._storage.set_trial_state_values(t._trial_id,
                                                  state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # it finished after all (journal storages raise RuntimeError)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        failed.append(t.number)
    return failed


def _run_workers(shared: dict[str, Any], verbose: bool) -> None:
    ctx = mp.get_context("spawn")
    study = _load_study(shared, 0)
    procs: dict[int, Any] = {}
    started = 0

    def start() -> None:
        nonlocal started
        with blas_threads_env():
            proc = ctx.Process(target=_work_process, args=(shared, started), daemon=True)
            proc.start()
        started += 1
        procs[proc.pid] = proc

    for _ in range(shared["workers"]):
        start()
    try:
        while procs:
            time.sleep(0.3)
            for pid, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                proc.join()
                del procs[pid]
                if proc.exitcode != 0:
                    lost = _fail_trials_of(study, pid)
                    if verbose or lost:
                        print(f"search: worker {pid} died (exit code {proc.exitcode}); "
                              f"trial(s) {lost} failed and queued again", file=sys.stderr)
            counts = _counts(study.get_trials(deepcopy=False))
            has_work = counts["finished"] < shared["trials"] and (
                counts["WAITING"] > 0 or counts["finished"] + counts["RUNNING"] <
                shared["trials"])
            while has_work and len(procs) < shared["workers"] and \
                    started < shared["workers"] + MAX_RESTARTS:
                start()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.join()
        close_storage(study._storage)


def _space_signature(space: SearchSpace, epochs: int, score: str,
                     defaults: dict[str, Any]) -> dict[str, Any]:
    return {"space": space.specs(), "epochs": epochs, "score": score, "defaults": defaults}


def _open_study(shared: dict[str, Any], resume: bool, signature: dict[str, Any]) -> Any:
    optuna = import_optuna()
    storage = make_storage(shared["storage"], workers=shared["workers"],
                           heartbeat_interval=shared["heartbeat_interval"],
                           grace_period=shared["grace_period"])
    name = shared["study"]
    with quiet_optuna():
        names = {s.study_name for s in optuna.study.get_all_study_summaries(storage)}
        if name in names and not resume:
            raise value_error(OWNER, "--study", "a new study name, or --resume to continue "
                              "this one", name)
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    load_if_exists=True)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, signature)
    elif stored != signature:
        diff = [k for k in signature if stored.get(k) != signature[k]]
        shown = "; ".join(f"{k}: stored {stored.get(k)!r}, given {signature[k]!r}"
                          for k in diff)
        raise value_error(OWNER, "--study", "run with the search space and settings it was "
                          "created with", name, f"{shown}. Use another --study name.")
    return study


def _to_record(t: Any, space: SearchSpace, score: str) -> dict[str, Any]:
    attrs = t.user_attrs
    history = attrs.get("history", {"train_accuracy": [], "val_accuracy": [], "loss": []})
    state = t.state.name
    params = {n: (t.params[n] if n in t.params else (p.choices[0] if p.kind == "fixed"
                                                      else None))
              for n, p in space.params.items()}
    if state == "COMPLETE":
        value = float(t.value)
    else:
        value = score_of(history, score)
    record = {"number": t.number, "state": state, "score": value, "params": params,
              "history": history, "seed": attrs.get("seed", ""),
              "epochs_run": attrs.get("epochs_run", 0),
              "duration_s": attrs.get("duration_s", 0.0)}
    for key in ("retry_of", "surplus", "host", "failed_by"):
        if key in attrs:
            record[key] = attrs[key]
    if "failed_trial" in t.system_attrs:
        record["retry_of"] = t.system_attrs["failed_trial"]
    return record


def optuna_search(space: SearchSpace, x_train: Any, t_train: Any, x_val: Any, t_val: Any, *,
                  trials: int = 100, epochs: int = 50, seed: int = 0,
                  hidden: Any = (100,) * 6, optimizer: str = "sgd", batch_size: int = 100,
                  workers: int = 1, score: str = "last", sampler: str = "tpe",
                  pruner: str = "hyperband", study: str = "groundup-search",
                  storage: str | None = None, resume: bool = False,
                  heartbeat_interval: int = 60, grace_period: int = 120,
                  verbose: bool = False,
                  on_ready: Callable[[], None] | None = None) -> SearchResult:
    """Optuna search over ``space`` until the study holds ``trials`` finished trials.

    Args:
        space, x_train, t_train, x_val, t_val, trials, epochs, seed, hidden, optimizer,
            batch_size, score: as for ``random_search``.
        workers: processes on this host; with ``workers > 1`` the parent fails the running
            trial of a worker that dies and queues it again.
        sampler: ``"tpe"`` or ``"qmc"`` (scrambled Sobol).
        pruner: ``"median"``, ``"hyperband"`` or ``"none"``; both pruners also stop a trial
            whose loss diverged and one still near chance after half the epochs.
        study: the study name in ``storage``.
        storage: ``None`` (memory), a journal file path, or a database URL.
        resume: continue (or join) an existing study; without it the name must be new.
        heartbeat_interval, grace_period: seconds, for database storages.
        verbose: print progress on stderr.
        on_ready: called once the storage and study are open and checked.

    Returns:
        A ``SearchResult`` with every trial of the study (FAIL ones included).
    """
    optuna = import_optuna()
    data = check_data(x_train, t_train, x_val, t_val)
    check_number(OWNER, "trials", trials, low=1, integer=True)
    check_number(OWNER, "epochs", epochs, low=1, integer=True)
    check_number(OWNER, "seed", seed, integer=True)
    check_number(OWNER, "workers", workers, low=1, integer=True)
    check_number(OWNER, "heartbeat_interval", heartbeat_interval, low=1, integer=True)
    check_number(OWNER, "grace_period", grace_period, low=1, integer=True)
    if grace_period <= heartbeat_interval:
        raise value_error(OWNER, "grace_period", f"> heartbeat_interval={heartbeat_interval}",
                          grace_period)
    check_choice(OWNER, "score", score, SCORES)
    check_choice(OWNER, "sampler", sampler, SAMPLERS)
    check_choice(OWNER, "pruner", pruner, PRUNERS)
    defaults = trial_defaults(hidden, optimizer, batch_size)
    shared = {"space": space.to_dict(), "data": data, "epochs": epochs, "trials": trials,
              "seed": seed, "score": score, "sampler": sampler, "pruner": pruner,
              "study": study, "storage": storage, "workers": workers, "defaults": defaults,
              "heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    signature = _space_signature(space, epochs, score, defaults)
    make_sampler(sampler, seed)  # a missing dependency shows before any work starts
    handle = _open_study(shared, resume, signature)
    if on_ready is not None:
        on_ready()
    if workers == 1:
        work(shared, 0, handle._storage)
    else:
        _run_workers(shared, verbose)
    all_trials = handle.get_trials(deepcopy=False)
    records = [_to_record(t, space, score) for t in all_trials
               if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                              optuna.trial.TrialState.FAIL)]
    counts = _counts(all_trials)
    close_storage(handle._storage)
    settings = {"engine": "optuna", "trials": trials, "epochs": epochs, "seed": seed,
                "score": score, "sampler": sampler, "pruner": pruner, "study": study,
                "storage": None if storage is None else mask_password(storage), "workers": workers,
                "defaults": defaults, "n_train": len(x_train), "n_val": len(x_val),
                "counts": {k: counts[k] for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING",
                                                   "WAITING")}}
    return SearchResult(records, space, settings)
