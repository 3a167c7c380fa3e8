import io
import json
from pathlib import Path

import numpy as np
import pytest

from groundup import experiments
from groundup.cli import main
from groundup.experiments import build_config, run_experiment

DATA_EXPERIMENTS = [n for n in experiments.names()
                    if "dataset" in experiments.get(n).Config.__dataclass_fields__]


def test_list_names_every_experiment(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    for name in experiments.names():
        assert name in out
    assert len(experiments.names()) >= 10


SEEDS = (0, 1, 2)


@pytest.fixture(scope="session")
def quick(tmp_path_factory):
    """``quick(name, seed)``: the payload of ``experiment run NAME --quick --seed SEED``,
    run once per test session (seed 0 with figures) and shared by every test that asks."""
    cache: dict[tuple[str, int], dict] = {}

    def get(name: str, seed: int = 0) -> dict:
        if (name, seed) not in cache:
            out = tmp_path_factory.mktemp(f"quick-{name}-{seed}")
            cache[name, seed] = run_experiment(name, seed=seed, quick=True, out=out, log=None,
                                               figures=seed == 0)
        return cache[name, seed]

    return get


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_quick_run_writes_its_files_and_repeats_exactly(name, quick,
                                                                         tmp_path):
    payload = quick(name)
    run_dir = Path(payload["out_dir"])
    for file in ("config.json", "results.json", "timing.json"):
        assert (run_dir / file).is_file(), file
    figures = sorted((run_dir / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 5000 for f in figures)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["experiment"] == name and results["seeds"] == [0]
    assert results["metrics"] == payload["metrics"] and results["metrics"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["quick"] is True and config["config"]["seed"] == 0
    run_experiment(name, quick=True, out=tmp_path, log=None, figures=False)
    assert (run_dir / "results.json").read_bytes() == (tmp_path / "results.json").read_bytes()


@pytest.mark.parametrize("name", DATA_EXPERIMENTS)
def test_data_experiments_say_which_data_they_used(name, quick):
    data = quick(name)["data"]
    # the test cache is private and offline: full MNIST falls back to the bundled sample
    assert data["name"] == "mnist-sample" and data["fallback"] is True
    assert "bundled sample" in data["note"]
    assert 0 < data["n_train_used"] <= data["n_train"]


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_states_the_books_result(name):
    book = experiments.get(name).BOOK
    assert isinstance(book, str) and len(book) > 20


def test_another_seed_gives_other_numbers(quick):
    assert quick("overfit", 0)["metrics"] != quick("overfit", 1)["metrics"]


# --quick shows each experiment's point, in every one of three seeds


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_batch_norm_learns_at_more_scales_with_batch_norm(quick, seed):
    m = quick("batch-norm", seed)["metrics"]
    with_bn = m["scales where batch norm learns (acc >= 0.5)"]
    without = m["scales where no batch norm learns (acc >= 0.5)"]
    assert with_bn >= 3 and with_bn > without, (with_bn, without)


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_overfit_gap_shrinks_with_weight_decay_and_dropout(quick, seed):
    payload = quick("overfit", seed)
    m = payload["metrics"]
    common = payload["results"]["common_epochs"]
    assert m["none: final train acc"] >= 0.95  # the unregularized net fits its 300 images
    assert m["none: gap (train - test)"] >= 0.15
    assert m["weight-decay: final train acc"] < m["none: final train acc"]
    assert m["weight-decay: gap (train - test)"] < m["none: gap (train - test)"]
    # dropout trains longer; at equal epochs its gap is narrower
    assert m[f"dropout: gap at epoch {common}"] < m[f"none: gap at epoch {common}"]
    assert m["dropout: final train acc"] < m["none: final train acc"]


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_weight_init_he_beats_xavier_beats_small_std(quick, seed):
    m = quick("weight-init-compare", seed)["metrics"]
    loss = {key: m[f"{key} mean loss of last 100 iterations"]
            for key in ("std=0.01", "Xavier", "He")}
    assert loss["He"] <= loss["Xavier"] < loss["std=0.01"], loss
    assert loss["std=0.01"] > 2.2  # std 0.01 does not learn: it stays near ln 10


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_optimizer_compare_sgd_is_slowest(quick, seed):
    m = quick("optimizer-compare", seed)["metrics"]
    loss = {name: m[f"{name} mean loss of last 100 iterations"]
            for name in ("sgd", "momentum", "adagrad", "adam")}
    assert all(loss["sgd"] > 2 * v for k, v in loss.items() if k != "sgd"), loss


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "key", "low"), [
    ("two-layer-net", "final test accuracy", 0.8),
    ("convnet", "final test accuracy (all)", 0.75),
])
def test_quick_networks_learn_well_above_chance(quick, seed, name, key, low):
    assert quick(name, seed)["metrics"][key] > low


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_gradient_check_errors_are_small(quick, seed):
    for row in quick("gradient-check", seed)["results"]["params"].values():
        assert row["mean_abs_diff"] < 1e-8
        assert row["gradient_check_max_relative_error"] < 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_descent_and_optimizer_paths_reach_the_minimum(quick, seed):
    descent = quick("gradient-descent", seed)["results"]["descent"]
    assert np.linalg.norm(descent["lr"]["final"]) < 0.1
    paths = quick("optimizer-paths", seed)["metrics"]
    assert all(v < 0.2 for v in paths.values()), paths


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_hyperparameter_search_best_trial_is_above_chance(quick, seed):
    m = quick("hyperparameter-search", seed)["metrics"]
    assert m["best val accuracy"] >= 0.3  # chance: 0.1
    assert 1e-3 <= m["best lr"] <= 1e-2


def test_progress_lines_per_seed_variant_and_epoch(tmp_path):
    log = io.StringIO()
    run_experiment("overfit", quick=True, sets=["epochs=3", "dropout_epochs=3"],
                   out=tmp_path / "a", log=log, figures=False)
    text = log.getvalue()
    assert "seed 0: started" in text and "seed 0: done in" in text
    for variant in ("none", "weight-decay", "dropout", "both"):
        assert f"seed 0: {variant}: epoch 1/3" in text and f"{variant}: epoch 3/3" in text
    log = io.StringIO()
    run_experiment("optimizer-compare", quick=True, sets=["iters=5"], out=tmp_path / "b",
                   log=log, figures=False)
    assert "iteration 5/5" in log.getvalue()


def test_no_progress_with_log_none(tmp_path, capsys):
    run_experiment("two-layer-net", quick=True, sets=["iters_num=60"], out=tmp_path,
                   log=None, figures=False)
    assert "seed 0" not in capsys.readouterr().err


def test_figure_titles_follow_the_run(quick):
    from groundup.experiments import _common as c

    payload = quick("overfit")
    assert payload["results"]["net"] == "784-100x6-10"
    assert c.data_title(payload["data"]) == \
        "mnist-sample (300 of 5,000 train / 1,000 of 10,000 test)"
    assert c.net_name(784, (30, 20), 10) == "784-30-20-10"
    assert c.data_title({"name": "d", "n_train": 50, "n_test": 9, "n_train_used": 50}) == \
        "d (50 train)"


def test_overfit_variant_numbers_do_not_depend_on_the_other_variants(quick, tmp_path):
    full = quick("overfit")
    alone = run_experiment("overfit", quick=True, sets=["variants=dropout"],
                           out=tmp_path, log=None, figures=False)
    assert list(alone["results"]["variants"]) == ["dropout"]
    assert alone["results"]["variants"]["dropout"] == full["results"]["variants"]["dropout"]


@pytest.mark.parametrize("workers", [1, 2])
def test_seeds_give_spread_table_and_bands(workers, tmp_path):
    short = ["variants=none,dropout", "epochs=6", "dropout_epochs=8"]
    payload = run_experiment("overfit", seeds=2, workers=workers, quick=True, sets=short,
                             out=tmp_path, log=None)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [0, 1] and len(results["per_seed"]) == 2
    gap = results["summary"]["none: gap (train - test)"]
    assert gap["values"] == [p["metrics"]["none: gap (train - test)"]
                             for p in results["per_seed"]]
    assert gap["min"] <= gap["mean"] <= gap["max"] and gap["std"] >= 0
    band = results["bands"]["none"]["series"]["train"]
    assert len(band["mean"]) == len(results["per_seed"][0]["results"]["variants"]["none"]
                                    ["train_accuracy"])
    for figure in ("seeds_table.png", "seeds_bands.png", "overfit.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 5000
    single = run_experiment("overfit", seed=1, quick=True, sets=short,
                            out=tmp_path / "one", log=None, figures=False)
    assert results["per_seed"][1]["metrics"] == single["metrics"]
    assert payload["summary"] == results["summary"]


def test_gradient_descent_reproduces_the_books_numbers(quick):
    payload = quick("gradient-descent")
    final = payload["results"]["descent"]["lr"]["final"]
    np.testing.assert_allclose(final, [-0.03458765, 0.04611686], rtol=1e-6)
    slopes = [t["slope"] for t in payload["results"]["tangents"]]
    np.testing.assert_allclose(slopes, [0.2, 0.3], atol=1e-9)
    big = payload["results"]["descent"]["lr_large"]["final"]
    assert abs(big[0]) > 1e10  # lr 10 diverges, as in the book


def test_optimizer_paths_first_sgd_step_is_the_books(quick):
    payload = quick("optimizer-paths")
    path = payload["results"]["paths"]["sgd"]["path"]
    assert path[0] == [-7.0, 2.0]
    np.testing.assert_allclose(path[1], [-6.335, -1.8])
    assert all(v < 0.2 for v in payload["metrics"].values())


def test_weight_init_histogram_constant_weights_stay_symmetric(quick):
    payload = quick("weight-init-histogram")
    symmetry = payload["results"]["symmetry"]
    assert symmetry["constant"]["max_unit_difference"] < 1e-12
    assert symmetry["he"]["max_unit_difference"] > 0.1
    cases = payload["results"]["cases"]
    assert sum(cases["sigmoid:xavier"]["layers"][0]["counts"]) == 200 * 100


def test_set_overrides_are_parsed_by_field_type():
    config = build_config("overfit", quick=True, sets=["hidden=20,10", "lr=0.5",
                                                      "variants=none", "dropout-ratio=0.3"])
    assert config.hidden == (20, 10) and config.lr == 0.5 and config.variants == ("none",)
    assert config.dropout_ratio == 0.3 and config.epochs == 100
    assert build_config("optimizer-paths", sets=["formulas=torch"]).formulas == "torch"
    assert build_config("two-layer-net", seed=4, dataset="fashion-mnist").seed == 4


def test_config_action_prints_the_settings(capsys):
    assert main(["experiment", "config", "batch-norm", "--set", "epochs=3"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["epochs"] == 3 and config["num_scales"] == 16


def test_cli_run_prints_metrics_and_the_data_note(tmp_path, capsys):
    code = main(["experiment", "run", "two-layer-net", "--quick", "--seed", "2",
                 "--out", str(tmp_path)])
    assert code == 0
    captured = capsys.readouterr()
    assert "final test accuracy" in captured.out
    assert "bundled sample" in captured.err
    assert json.loads((tmp_path / "config.json").read_text())["seeds"] == [2]


@pytest.mark.parametrize(("argv", "match"), [
    (["run", "overfitt"], "NAME must be one of the known names.*did you mean 'overfit'"),
    (["run", "overfit", "--set", "epoch=3"], "--set key must be a field.*'epochs'"),
    (["run", "overfit", "--set", "epochs"], "--set must be KEY=VALUE"),
    (["run", "overfit", "--set", "epochs=many"], "--set epochs must be an int"),
    (["run", "overfit", "--set", "lr=fast"], "--set lr must be a float"),
    (["run", "overfit", "--set", "epochs=0"], "epochs must be in"),
    (["run", "overfit", "--set", "lr=-1"], r"lr must be in \(0, inf"),
    (["run", "overfit", "--set", "variants=none,l2"], "variants must be one of"),
    (["run", "overfit", "--set", "dropout_ratio=1"], "dropout_ratio must be in"),
    (["run", "overfit", "--set", "hidden=0"], "hidden must be in"),
    (["run", "overfit", "--dataset", "cifar"], "dataset must be one of"),
    (["run", "overfit", "--seeds", "0"], "--seeds must be in"),
    (["run", "overfit", "--seed", "-1"], "--seed must be in"),
    (["run", "overfit", "--workers", "0", "--quick"], "--workers must be in"),
    (["run", "gradient-descent", "--dataset", "mnist"], "--dataset must be left out"),
    (["run", "gradient-descent", "--set", "init_x=1"], "init_x must be two numbers"),
    (["run", "optimizer-paths", "--set", "lrs=0.1"], r"len\(lrs\) must be"),
    (["run", "optimizer-paths", "--set", "formulas=keras"], "formulas must be one of"),
    (["run", "optimizer-paths", "--set", "optimizers=sgd,nag,x,y"], "optimizers must be"),
    (["run", "optimizer-compare", "--set", "optimizers=sgd,adamx"], r"len\(lrs\)"),
    (["run", "optimizer-compare", "--set", "optimizers=sgd", "lrs=0.1,0.2"], r"len\(lrs\)"),
    (["run", "weight-init-compare", "--set", "inits=0.01,bogus"], "must be one of"),
    (["run", "weight-init-compare", "--set", "inits=-1"], "inits must be in"),
    (["run", "weight-init-histogram", "--set", "cases=relu:big"], "cases must be"),
    (["run", "weight-init-histogram", "--set", "cases=elu:he"], "cases activation"),
    (["run", "batch-norm", "--set", "learn_threshold=2"], "learn_threshold must be in"),
    (["run", "two-layer-net", "--set", "activation=gelu"], "activation must be one of"),
    (["run", "convnet", "--set", "optimizer=lion"], "optimizer must be one of"),
    (["run", "convnet", "--set", "pad=-1"], "pad must be in"),
    (["run", "gradient-check", "--set", "coords=0"], "coords must be in"),
    (["config", "overfit", "--set", "colour=red"], "--set key must be a field"),
])
def test_bad_input_exits_2_with_one_line(argv, match, capsys, tmp_path):
    assert main(["experiment", *argv, "--out", str(tmp_path)] if argv[0] == "run"
                else ["experiment", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(match, err), err


def test_experiment_without_action_prints_usage(capsys):
    assert main(["experiment"]) == 2
    assert "ACTION" in capsys.readouterr().err


def test_set_bool_field_parses_words():
    from groundup.experiments._runner import _parse_value

    assert _parse_value("x", "flag", "yes", False) is True
    assert _parse_value("x", "flag", "off", True) is False
    with pytest.raises(ValueError, match="--set flag must be true or false"):
        _parse_value("x", "flag", "maybe", True)
    with pytest.raises(ValueError, match="--set hidden must be a comma-separated list"):
        _parse_value("x", "hidden", ",", (1,))


def test_show_without_a_display_says_so_and_succeeds(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["experiment", "run", "optimizer-paths", "--show", "--out", str(tmp_path)]) == 0
    assert "no interactive matplotlib backend" in capsys.readouterr().err


def test_plot_redraws_figures_from_results(tmp_path, capsys):
    run_experiment("overfit", seeds=2, workers=1, quick=True,
                   sets=["variants=none", "epochs=5"], out=tmp_path, log=None, figures=False)
    assert not list((tmp_path / "figures").glob("*.png"))
    assert main(["experiment", "plot", str(tmp_path)]) == 0
    drawn = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert drawn == {"overfit.png", "seeds_table.png", "seeds_bands.png"}
    assert main(["experiment", "plot", str(tmp_path / "nothing")]) == 2
    assert "DIR must be a run directory holding results.json" in capsys.readouterr().err
