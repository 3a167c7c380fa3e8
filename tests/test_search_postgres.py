"""Many machines on one PostgreSQL study: a real server on 127.0.0.1 (skipped where the
PostgreSQL binaries are not installed). Each "machine" is a separate `groundup search`
process; heartbeat and grace period are kept to seconds so the tests finish fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from groundup.search.space import BOOK_SPACE, SearchSpace
from pg_helpers import find_binaries, postgres_server

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg")
if find_binaries() is None:
    pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed", allow_module_level=True)

ENV = {**os.environ, "GROUNDUP_OFFLINE": "1"}


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def _argv(url, study, out, epochs, trials):
    return [sys.executable, "-m", "groundup", "search", "--engine", "optuna", "--dataset",
            "mnist-sample", "--train-size", "300", "--epochs", str(epochs), "--trials",
            str(trials), "--pruner", "none", "--study", study, "--storage", url, "--resume",
            "--heartbeat-interval", "1", "--grace-period", "3", "--out", str(out)]


def _trials(url, name):
    """The study's trials, read over a connection that is closed again."""
    from groundup.search.storage import make_storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = make_storage(url, heartbeat_interval=1, grace_period=3)
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    finally:
        storage.engine.dispose()


def test_two_machines_finish_exactly_the_requested_trials(pg_url, tmp_path):
    procs = [subprocess.Popen(_argv(pg_url, "two", tmp_path / name, 15, 10),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
             for name in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    trials = _trials(pg_url, "two")
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 10
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 10
    # a trial either finished or was refused before training as one too many
    assert all(t.user_attrs.get("surplus") for t in trials if t.state.name == "FAIL")
    assert len({t.user_attrs["worker_pid"] for t in finished}) == 2


def _wait_running(url, name, timeout=120.0):
    """The first RUNNING trial that has a worker and has drawn every searched parameter.

    ``worker_pid`` is written before the parameters are suggested, so a trial seen only
    with ``worker_pid`` may still lack some of them."""
    searched = {n for n, p in SearchSpace.parse(BOOK_SPACE).params.items() if p.kind != "fixed"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for t in _trials(url, name):
                if t.state.name == "RUNNING" and "worker_pid" in t.user_attrs and \
                        set(t.params) == searched:
                    return t
        except KeyError:
            pass
        time.sleep(0.1)
    raise AssertionError("no trial started running with all its parameters")


def _wait_stale(url, name, trial, timeout=120.0):
    """Wait until ``trial`` has gone ``grace_period`` seconds without a heartbeat (a trial
    that never recorded one would never go stale, and this would fail here)."""
    from groundup.search.storage import make_storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = make_storage(url, heartbeat_interval=1, grace_period=3)
    try:
        study_id = storage.get_study_id_from_name(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if trial._trial_id in storage._get_stale_trial_ids(study_id):
                return
            time.sleep(0.2)
    finally:
        storage.engine.dispose()
    raise AssertionError(f"trial {trial.number} did not go stale")


def test_killed_machine_trial_fails_after_grace_and_resume_completes(pg_url, tmp_path):
    argv = _argv(pg_url, "kill", tmp_path / "a", 100, 2)
    victim_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ENV)
    try:
        victim = _wait_running(pg_url, "kill")
        assert victim.user_attrs["worker_pid"] == victim_proc.pid
        victim_proc.send_signal(signal.SIGKILL)
        victim_proc.wait(timeout=30)
    finally:
        if victim_proc.poll() is None:
            victim_proc.kill()
    killed = _trials(pg_url, "kill")[victim.number]
    assert killed.state.name == "RUNNING" and killed.params == victim.params
    _wait_stale(pg_url, "kill", victim)
    # stale is not failed: only a worker's fail_stale_trials moves it to FAIL
    assert _trials(pg_url, "kill")[victim.number].state.name == "RUNNING"
    resumed = subprocess.run(_argv(pg_url, "kill", tmp_path / "b", 100, 2),
                             capture_output=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    trials = _trials(pg_url, "kill")
    assert trials[victim.number].state.name == "FAIL"
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2
    retry = [t for t in finished if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].params == victim.params
