"""groundup.search and `groundup search`: spaces, the random engine, Optuna on a journal
file with worker processes, run-directory outputs and bad input."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from groundup.cli import main
from groundup.data import load_mnist_sample, train_val_split
from groundup.search import (
    SearchResult,
    SearchSpace,
    plot_best_n,
    plot_score_plane,
    random_search,
    run_trial,
    score_of,
)
from groundup.search.space import Param, parse_param

BOOK = ["lr=log:1e-6:1e-2", "weight_decay=log:1e-8:1e-4"]


@pytest.fixture(scope="module")
def small_data():
    (x, t), _ = load_mnist_sample()
    (x_train, t_train), (x_val, t_val) = train_val_split(x[:300], t[:300], 0.2, seed=0)
    return x_train, t_train, x_val, t_val


# ---- search space -----------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "kind", "low", "high", "choices"), [
    ("lr=log:1e-6:1e-2", "log", 1e-6, 1e-2, ()),
    ("dropout_ratio=uniform:0:0.5", "uniform", 0.0, 0.5, ()),
    ("hidden_layers=int:2:6", "int", 2, 6, ()),
    ("optimizer=choice:sgd,Adam", "choice", None, None, ("sgd", "adam")),
    ("batchnorm=choice:true,false", "choice", None, None, (True, False)),
    ("hidden_size=50", "fixed", None, None, (50,)),
])
def test_parse_param_reads_every_kind(spec, kind, low, high, choices):
    param = parse_param(spec)
    assert (param.kind, param.low, param.high, param.choices) == (kind, low, high, choices)
    assert parse_param(param.spec()) == param


def test_space_samples_inside_ranges_and_log_uniformly():
    space = SearchSpace.parse(BOOK + ["hidden_layers=int:2:4", "optimizer=choice:sgd,adam"])
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(2000)]
    lrs = np.log10([d["lr"] for d in draws])
    assert lrs.min() >= -6 and lrs.max() <= -2
    # log-uniform: each decade gets about a quarter of the draws
    counts = np.histogram(lrs, bins=4, range=(-6, -2))[0]
    assert counts.min() > 400
    assert {d["hidden_layers"] for d in draws} == {2, 3, 4}
    assert {d["optimizer"] for d in draws} == {"sgd", "adam"}


def test_space_round_trips_through_dict():
    space = SearchSpace.parse(BOOK + ["batchnorm=choice:true,false"])
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_narrowed_space_recentres_on_top_trials():
    space = SearchSpace.parse(BOOK + ["optimizer=choice:sgd,adam,adagrad"])
    top = [{"lr": 1e-3, "weight_decay": 1e-7, "optimizer": "sgd"},
           {"lr": 1e-2, "weight_decay": 1e-6, "optimizer": "adam"}]
    new = space.narrowed(top)
    lr = new.params["lr"]
    assert 1e-4 < lr.low <= 1e-3 and lr.high == pytest.approx(1e-2)
    assert new.params["optimizer"].choices == ("sgd", "adam")
    assert space.narrowed([]) == space


@pytest.mark.parametrize(("spec", "match"), [
    ("lr=log:1e-3:1e-3", "empty range"),
    ("lr=log:1e-2:1e-6", "inverted range"),
    ("lr=uniform:0.5:0.1", "inverted range"),
    ("weight_decay=log:0:1e-4", "LOW > 0"),
    ("lr=log:-1e-3:1e-2", "LOW > 0"),
    ("lrr=log:1e-6:1e-2", "did you mean 'lr'"),
    ("lr", "NAME=SPEC"),
    ("lr=gauss:0:1", "log, uniform, int or choice"),
    ("lr=log:1e-6", "log:LOW:HIGH"),
    ("lr=log:a:1", "a number"),
    ("dropout_ratio=uniform:0:1.5", r"in \[0, 1\)"),
    ("hidden_size=int:0:10", r"in \[1, inf\]"),
    ("hidden_size=log:1:10", "int or choice"),
    ("lr=int:1:3", "log, uniform or choice"),
    ("optimizer=choice:sgd,adamx", "an optimizer name"),
    ("optimizer=log:1:2", "choice for a str"),
    ("batchnorm=maybe", "true or false"),
    ("optimizer=choice:", "at least one value"),
])
def test_parse_param_rejects_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_param(spec)


def test_space_rejects_duplicates_empty_and_non_params():
    with pytest.raises(ValueError, match="each name once"):
        SearchSpace.parse(["lr=0.1", "lr=0.2"])
    with pytest.raises(ValueError, match="at least one parameter"):
        SearchSpace([])
    with pytest.raises(TypeError, match="Param objects"):
        SearchSpace(["lr=0.1"])
    with pytest.raises(TypeError, match="NAME=SPEC string"):
        parse_param(0.1)
    assert isinstance(SearchSpace.parse("lr=0.1").params["lr"], Param)


# ---- trials and the random engine -------------------------------------------------------

def test_score_is_last_or_best_validation_accuracy():
    history = {"val_accuracy": [0.2, 0.6, 0.5, math.nan]}
    assert score_of(history, "last") == 0.5
    assert score_of(history, "best") == 0.6
    assert score_of({}, "last") == 0.0
    with pytest.raises(ValueError, match="score"):
        score_of(history, "mean")


def test_run_trial_builds_the_requested_network(small_data):
    x_train, t_train, x_val, t_val = small_data
    from groundup.search.trial import SearchData

    calls = []
    record = run_trial({"lr": 0.05, "hidden_layers": 2, "hidden_size": 20,
                        "optimizer": "adam", "batchnorm": True, "dropout_ratio": 0.1},
                       SearchData(x_train, t_train, x_val, t_val), epochs=4, seed=1,
                       on_epoch=lambda epoch, logs: calls.append(epoch) or epoch == 1)
    assert calls == [0, 1]  # stopped by on_epoch after the second epoch
    assert record["stopped"] and record["epochs_run"] == 2
    assert set(record["history"]) == {"train_accuracy", "val_accuracy", "loss"}


def test_random_search_same_seed_same_result_with_any_worker_count(small_data):
    space = SearchSpace.parse(BOOK)
    kwargs = {"trials": 4, "epochs": 2, "seed": 7, "hidden": (30,) * 2}
    one = random_search(space, *small_data, **kwargs)
    again = random_search(space, *small_data, **kwargs)
    two = random_search(space, *small_data, **kwargs, workers=2)
    def strip(result):
        return [{k: v for k, v in t.items() if k != "duration_s"} for t in result.trials]

    assert strip(one) == strip(again) == strip(two)
    assert [t["number"] for t in one.trials] == [0, 1, 2, 3]
    assert one.best["score"] == max(t["score"] for t in one.trials)
    json.dumps(one.to_dict())


def test_random_search_finds_a_learning_rate_that_learns(small_data):
    space = SearchSpace.parse(["lr=log:1e-4:0.5"])
    result = random_search(space, *small_data, trials=6, epochs=10, seed=0, hidden=(50,))
    assert result.best["score"] > 0.6
    assert result.best["history"]["val_accuracy"][-1] == result.best["score"]


def test_random_search_narrow_rounds_shrink_the_ranges(small_data):
    space = SearchSpace.parse(BOOK)
    result = random_search(space, *small_data, trials=3, epochs=1, seed=0, hidden=(20,),
                           narrow=(2, 2))
    assert len(result.trials) == 9
    assert [t["round"] for t in result.trials] == [0] * 3 + [1] * 3 + [2] * 3
    widths = [SearchSpace.parse(r).params["lr"] for r in result.settings["rounds"]]
    assert math.log(widths[1].high / widths[1].low) < math.log(widths[0].high / widths[0].low)


def test_random_search_resume_keeps_finished_trials(small_data):
    space = SearchSpace.parse(BOOK)
    full = random_search(space, *small_data, trials=3, epochs=1, seed=2, hidden=(20,))
    partial = SearchResult(full.trials[:1], space, full.settings)
    resumed = random_search(space, *small_data, trials=3, epochs=1, seed=2, hidden=(20,),
                            previous=partial)
    assert [t["params"] for t in resumed.trials] == [t["params"] for t in full.trials]
    assert resumed.trials[0] is partial.trials[0]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"trials": 0}, "trials"),
    ({"epochs": 0}, "epochs"),
    ({"workers": 0}, "workers"),
    ({"score": "mean"}, "score"),
    ({"hidden": (100, 50)}, "equal positive layer sizes"),
    ({"narrow": (0, 1)}, "narrow K"),
])
def test_random_search_rejects_bad_arguments(small_data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_search(SearchSpace.parse(BOOK), *small_data, **kwargs)


def test_random_search_rejects_mismatched_data(small_data):
    x_train, t_train, x_val, t_val = small_data
    with pytest.raises(ValueError, match="len"):
        random_search(SearchSpace.parse(BOOK), x_train, t_train[:-1], x_val, t_val)


def test_result_files_and_figures(small_data, tmp_path):
    result = random_search(SearchSpace.parse(BOOK), *small_data, trials=3, epochs=2,
                           hidden=(20,))
    result.write(tmp_path)
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["number", "state", "score", "lr", "weight_decay"]
    assert len(lines) == 4
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["best"]["number"] == result.best["number"]
    assert SearchResult.load(tmp_path).to_dict() == json.loads(json.dumps(result.to_dict()))
    assert plot_best_n(result, tmp_path / "b.png", n=20).stat().st_size > 0
    assert plot_score_plane(result, tmp_path / "p.png").stat().st_size > 0
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        plot_score_plane(result, tmp_path / "p.png", "lrr", "weight_decay")
    with pytest.raises(ValueError, match="at least one finished trial"):
        plot_best_n(SearchResult([], result.space), tmp_path / "x.png")


# ---- the command line ---------------------------------------------------------------------

SMALL = ["--dataset", "mnist-sample", "--train-size", "200", "--epochs", "2"]


def test_search_command_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *SMALL, "--trials", "3", "--out", str(out),
                 "--param", "lr=log:1e-3:1e-1", "--param", "weight_decay=log:1e-8:1e-4",
                 "--param", "hidden_layers=2", "--param", "hidden_size=20"]) == 0
    for name in ("config.json", "trials.csv", "trials.json", "best.json",
                 "figures/best-n.png", "figures/score-plane.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["n_train"] == 160 and config["n_val"] == 40
    assert "best trial" in capsys.readouterr().out
    # --resume with more trials keeps the first three
    first = json.loads((out / "trials.json").read_text())["trials"]
    assert main(["search", *SMALL, "--trials", "4", "--out", str(out), "--resume",
                 "--param", "lr=log:1e-3:1e-1", "--param", "weight_decay=log:1e-8:1e-4",
                 "--param", "hidden_layers=2", "--param", "hidden_size=20"]) == 0
    again = json.loads((out / "trials.json").read_text())["trials"]
    assert again[:3] == first and len(again) == 4


@pytest.mark.parametrize(("extra", "match"), [
    (["--param", "lr=log:1e-3:1e-3"], "empty range"),
    (["--param", "lr=log:1e-2:1e-6"], "inverted range"),
    (["--param", "weight_decay=log:0:1e-4"], "LOW > 0"),
    (["--param", "learning_rate=log:1e-6:1e-2"], "a known hyperparameter"),
    (["--trials", "0"], "--trials"),
    (["--workers", "0"], "--workers"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--train-size", "999999"], "--train-size"),
    (["--narrow", "3", "2", "--engine", "optuna"], "--narrow"),
    (["--storage", "x.journal"], "--storage"),
    (["--grace-period", "5", "--heartbeat-interval", "5"], "--grace-period"),
    (["--resume"], "--out"),
    (["--dataset", "cifar"], "--dataset"),
])
def test_search_command_bad_input_exits_2_with_one_line(extra, match, capsys):
    assert main(["search", *SMALL, "--trials", "2", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("groundup search: error: ")
    assert __import__("re").search(match, err[0])


def test_search_command_unknown_engine_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "--engine", "grid"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_search_command_out_under_a_file_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["search", *SMALL, "--trials", "1", "--out", str(blocker / "run")]) == 2
    assert "a file stands where" in capsys.readouterr().err


def _die_once(marker_dir, key):
    """Worker task: the first attempt at key 1 kills its own process."""
    marker = os.path.join(marker_dir, f"{key}.tried")
    if key == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return key * 10


def test_run_pool_fails_a_dead_workers_task_and_runs_it_again(tmp_path):
    from groundup.search.pool import run_pool

    done, failed = {}, []
    run_pool(_die_once, str(tmp_path), [(k, k) for k in range(4)], 2,
             on_done=done.__setitem__, on_failed=lambda key, why: failed.append((key, why))
             or True)
    assert done == {0: 0, 1: 10, 2: 20, 3: 30}
    assert len(failed) == 1 and failed[0][0] == 1 and "died (exit code 9)" in failed[0][1]


SPACE = ["--param", "lr=log:1e-3:1e-1", "--param", "hidden_layers=2", "--param",
         "hidden_size=20"]


def _trials(out):
    trials = json.loads((out / "trials.json").read_text())["trials"]
    return [{k: v for k, v in t.items() if k != "duration_s"} for t in trials]


def test_ctrl_c_mid_search_then_resume_equals_an_uninterrupted_search(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    whole = tmp_path / "whole"
    assert main(["search", *SMALL, "--trials", "8", "--out", str(whole), *SPACE]) == 0
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "groundup", "search", *SMALL, "--trials",
                             "8", "--out", str(out), *SPACE],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads((out / "trials.json").read_text())["trials"]) >= 2:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    written = len(_trials(out))
    assert proc.returncode == 130 and "Traceback" not in err
    assert 2 <= written < 8, "interrupt the search between its trials"
    assert main(["search", *SMALL, "--trials", "8", "--out", str(out), "--resume",
                 *SPACE]) == 0
    assert sorted(_trials(out), key=lambda t: t["number"]) == \
        sorted(_trials(whole), key=lambda t: t["number"])


@pytest.mark.parametrize("command", ["search", "experiment", "train"])
def test_a_non_empty_out_is_refused_and_overwrite_replaces_only_own_files(tmp_path, capsys,
                                                                          command):
    out = tmp_path / "run"
    argv = {"search": ["search", *SMALL, "--trials", "1", *SPACE],
            "experiment": ["experiment", "run", "optimizer-paths", "--quick"],
            "train": ["train", "--dataset", "mnist-sample", "--model", "two-layer",
                      "--epochs", "1"]}[command]
    assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    (out / "my-notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main([*argv, "--out", str(out), "--overwrite"]) == 2
    assert "my-notes.txt" in capsys.readouterr().err
    assert (out / "my-notes.txt").read_text() == "keep me"
