"""`groundup search --engine optuna`: journal-file studies, worker processes, pruning,
and the errors of an existing study or an unreachable database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from groundup.cli import main
from groundup.data import load_mnist_sample, train_val_split
from groundup.search import SearchSpace

optuna = pytest.importorskip("optuna")

BOOK = ["lr=log:1e-6:1e-2", "weight_decay=log:1e-8:1e-4"]
SMALL = ["--dataset", "mnist-sample", "--train-size", "200", "--epochs", "2"]


@pytest.fixture(scope="module")
def small_data():
    (x, t), _ = load_mnist_sample()
    (x_train, t_train), (x_val, t_val) = train_val_split(x[:300], t[:300], 0.2, seed=0)
    return x_train, t_train, x_val, t_val


# ---- Optuna on a journal file -------------------------------------------------------------



def _load(storage_path, name="s"):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = JournalStorage(JournalFileBackend(str(storage_path)))
        return optuna.load_study(study_name=name, storage=storage)


def test_optuna_search_counts_only_finished_trials(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "5", "--study", "s",
                 "--pruner", "median", "--out", str(out)]) == 0
    study = _load(out / "study.journal")
    states = [t.state.name for t in study.trials]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 5
    result = json.loads((out / "trials.json").read_text())
    assert result["settings"]["counts"]["COMPLETE"] + result["settings"]["counts"]["PRUNED"] == 5


@pytest.mark.parametrize(("sampler", "pruner"), [("tpe", "hyperband"), ("qmc", "none"),
                                                  ("tpe", "median")])
def test_optuna_search_samplers_and_pruners(small_data, sampler, pruner):
    from groundup.search import optuna_search

    if sampler == "qmc":
        pytest.importorskip("scipy")
    result = optuna_search(SearchSpace.parse(BOOK + ["optimizer=choice:sgd,adam"]),
                           *small_data, trials=4, epochs=3, hidden=(20,), sampler=sampler,
                           pruner=pruner, study="t")
    assert len([t for t in result.trials if t["state"] in ("COMPLETE", "PRUNED")]) == 4
    assert {t["params"]["optimizer"] for t in result.trials} <= {"sgd", "adam"}


def test_optuna_study_with_a_different_space_exits_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "1", "--study", "s",
                 "--out", str(out), "--param", "lr=log:1e-3:1e-1"]) == 0
    capsys.readouterr()
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "2", "--study", "s",
                 "--out", str(out), "--resume", "--param", "lr=log:1e-4:1e-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search space and settings it was created with" in err[0]
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "2", "--study", "s",
                 "--out", str(out), "--param", "lr=log:1e-3:1e-1"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_unreachable_storage_exits_2_without_the_password(tmp_path, capsys):
    url = "postgresql://user:secret@127.0.0.1:1/nowhere"
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "1", "--storage", url,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a reachable database URL" in err[0]
    assert "secret" not in err[0]


def test_sqlite_is_refused_for_parallel_workers(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "2", "--workers", "2",
                 "--storage", url, "--out", str(tmp_path / "run")]) == 2
    assert "SQLite" in capsys.readouterr().err


def _running_trial(journal, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            try:
                study = _load(journal)
            except KeyError:
                study = None
            if study is not None:
                for t in study.trials:
                    # the worker records its pid, then draws the parameters one by one:
                    # wait for all of them so the snapshot can be compared with the retry
                    if (t.state.name == "RUNNING" and "worker_pid" in t.user_attrs
                            and {"lr", "weight_decay"} <= set(t.params)):
                        return t
        time.sleep(0.05)
    raise AssertionError("no trial started running")


def test_workers_parent_fails_the_trial_of_a_killed_worker(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "groundup", "search", "--engine", "optuna", "--dataset",
            "mnist-sample", "--train-size", "300", "--epochs", "60", "--trials", "2",
            "--workers", "2", "--pruner", "none", "--study", "s", "--out", str(out)]
    parent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "GROUNDUP_OFFLINE": "1"})
    try:
        victim = _running_trial(out / "study.journal")
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
        _, err = parent.communicate(timeout=240)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, err.decode()
    assert f"trial(s) [{victim.number}] failed and queued again" in err.decode()
    study = _load(out / "study.journal")
    by_number = {t.number: t for t in study.trials}
    assert by_number[victim.number].state.name == "FAIL"
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2
    retried = [t for t in finished if t.user_attrs.get("retry_of") == victim.number]
    assert len(retried) == 1 and retried[0].params == victim.params


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sampler": "cmaes"}, "sampler"),
    ({"pruner": "patient"}, "pruner"),
    ({"heartbeat_interval": 5, "grace_period": 5}, "grace_period"),
    ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ({"trials": 0}, "trials"),
    ({"workers": 2}, "journal file path or database URL"),
])
def test_optuna_search_rejects_bad_arguments(small_data, kwargs, match):
    from groundup.search import optuna_search

    with pytest.raises(ValueError, match=match):
        optuna_search(SearchSpace.parse(BOOK), *small_data, **kwargs)


def test_journal_storage_under_a_file_is_an_error(small_data, tmp_path):
    from groundup.search import optuna_search

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="a file stands where"):
        optuna_search(SearchSpace.parse(BOOK), *small_data, trials=1, epochs=1,
                      storage=str(blocker / "study.journal"))


def test_missing_optuna_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["search", "--engine", "optuna", *SMALL, "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'groundup[search]'" in err[0]


def test_qmc_without_scipy_names_the_package(monkeypatch):
    from groundup.search.optuna_engine import make_sampler

    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(RuntimeError, match="pip install scipy"):
        make_sampler("qmc", 0)
