import json

import numpy as np
import pytest

from groundup import io
from groundup.cli import main


def test_train_on_bundled_sample_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "2", "--hidden", "30",
                 "--out", str(out), "--seed", "3"])
    assert code == 0
    for name in ("config.json", "history.json", "history.csv", "model.npz",
                 "figures/curves.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["data_source"]["name"] == "mnist-sample"
    assert config["versions"]["numpy"] == np.__version__
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert history["val_accuracy"][-1] > 0.6
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert header == list(history)
    model = io.load(out / "model.npz")
    assert model.params["W1"].shape == (784, 30)
    assert "test accuracy" in capsys.readouterr().out


def test_train_same_seed_same_history(tmp_path):
    for name in ("a", "b"):
        assert main(["train", "--dataset", "mnist-sample", "--epochs", "2", "--hidden", "20",
                     "--dropout", "0.2", "--batchnorm", "--out", str(tmp_path / name)]) == 0
    a = json.loads((tmp_path / "a" / "history.json").read_text())
    b = json.loads((tmp_path / "b" / "history.json").read_text())
    assert a == b


@pytest.mark.parametrize(("argv", "match"), [
    (["--epochs", "-1"], "--epochs must be in"),
    (["--batch-size", "0"], "--batch-size must be in"),
    (["--model", "mpl"], "did you mean 'mlp'"),
    (["--optimizer", "adamm"], "did you mean 'adam'"),
    (["--dataset", "mnsit"], "did you mean 'mnist'"),
    (["--dataset", "missing.npz"], "missing.npz"),
    (["--dropout", "1.0"], "--dropout must be in"),
    (["--lr", "0"], "--lr must be in"),
    (["--hidden", "10,x"], "--hidden must be comma-separated positive ints"),
    (["--val-fraction", "1.5"], "--val-fraction must be in"),
])
def test_train_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, match):
    code = main(["train", "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert match in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_unknown_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epoch", "3", "--out", "unused"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_train_npz_missing_keys(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((4, 784)))
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "'t_train' is missing" in capsys.readouterr().err


# -- resume, Ctrl-C, config files ---------------------------------------------------------

SMALL = ["--dataset", "mnist-sample", "--hidden", "64,32", "--dropout", "0.1", "--batchnorm",
         "--seed", "5"]


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _start(out, epochs):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "groundup", "train", *SMALL, "--epochs", str(epochs),
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epoch(proc, out, epoch, timeout=120.0):
    import time

    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()[1]}")
        try:
            if json.loads(state.read_text())["epoch"] >= epoch:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    pytest.fail("no checkpoint appeared in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", *SMALL, "--epochs", "8", "--out", str(out)]) == 0
    return out


def test_sigkill_mid_run_then_resume_gives_identical_parameters(tmp_path, uninterrupted):
    import signal

    out = tmp_path / "run"
    proc = _start(out, 8)
    _wait_for_epoch(proc, out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert 2 <= state["epoch"] < 8 and not (out / "model.npz").exists()
    assert main(["train", "--resume", str(out)]) == 0
    ref, got = _arrays(uninterrupted / "model.npz"), _arrays(out / "model.npz")
    assert ref.keys() == got.keys()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert (json.loads((out / "history.json").read_text())
            == json.loads((uninterrupted / "history.json").read_text()))


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path, uninterrupted):
    import signal

    out = tmp_path / "run"
    proc = _start(out, 8)
    _wait_for_epoch(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("groundup train: interrupted; the checkpoint in")
    assert last.endswith(f"Resume with: groundup train --resume {out}")
    assert "Traceback" not in err
    assert main(["train", "--resume", str(out)]) == 0
    ref, got = _arrays(uninterrupted / "model.npz"), _arrays(out / "model.npz")
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


def test_resume_with_a_different_setting_exits_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--lr must be left unset (its default) as in the run being resumed" in err[0]
    assert main(["train", "--resume", str(out), "--hidden", "10"]) == 2
    assert "--hidden must be '64,32'" in capsys.readouterr().err
    # the same value as saved is fine, and so is a longer run
    assert main(["train", "--resume", str(out), "--seed", "5", "--epochs", "2"]) == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]


@pytest.mark.parametrize(("make_dir", "match"), [
    (lambda p: p / "missing", "no run directory"),
    (lambda p: p, "is not a run directory: config.json is missing"),
])
def test_resume_from_a_non_run_exits_2(tmp_path, capsys, make_dir, match):
    assert main(["train", "--resume", str(make_dir(tmp_path))]) == 2
    assert match in capsys.readouterr().err


def test_train_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "model.npz").read_bytes()
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    assert f"continue it with --resume {out}" in capsys.readouterr().err
    assert (out / "model.npz").read_bytes() == before


def test_config_file_sets_values_and_flags_override_it(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('dataset = "mnist-sample"\nhidden = [24]\nbatch-size = 50\nepochs = 3\n'
                   'optimizer = "sgd"\nlr = 0.1\nseed = 2\n'
                   '[optimizer_args]\nmomentum = 0.9\n'
                   '[schedule]\nname = "step"\nstep_size = 1\ngamma = 0.5\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--epochs", "2", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["epochs"], config["batch_size"], config["hidden"]) == (2, 50, "24")
    assert config["optimizer_config"]["momentum"] == 0.9
    history = json.loads((out / "history.json").read_text())
    assert history["lr"] == [0.1, 0.05]


@pytest.mark.parametrize(("text", "match"), [
    ("epochz = 3\n", "got --config key='epochz'. did you mean 'epochs'"),
    ("epochs = \n", "--config must be a valid TOML file"),
    ("schedule = 3\n", "--config schedule must be a table"),
    ("epochs = -2\n", "--epochs must be in"),
])
def test_bad_config_file_exits_2(tmp_path, capsys, text, match):
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert match in err[-1]


def test_diverging_run_stops_with_exit_1_and_keeps_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tmp_path / "explode.toml"  # the lr jumps by 1e32 after the first epoch
    cfg.write_text('optimizer = "sgd"\nlr = 0.01\n[schedule]\nname = "step"\nstep_size = 1\n'
                   'gamma = 1e32\n')
    code = main(["train", "--dataset", "mnist-sample", "--hidden", "50", "--config", str(cfg),
                 "--epochs", "3", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "non-finite loss (nan) at epoch 2, step" in err
    assert f"the checkpoint in {out / 'checkpoint'} is at the end of epoch 1" in err
    assert json.loads((out / "history.json").read_text())["epoch"] == [1]
    assert (out / "model.npz").is_file()
    model = io.load(out / "model.npz")
    assert all(np.isfinite(v).all() for v in model.params.values())


# -- evaluate and predict -------------------------------------------------------------------

def test_evaluate_reports_the_runs_test_accuracy(uninterrupted, capsys):
    assert main(["evaluate", str(uninterrupted), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    history = json.loads((uninterrupted / "history.json").read_text())
    assert result["accuracy"] == history["test_accuracy"][-1]
    assert result["n"] == 10000 and sum(map(sum, result["confusion"])) == 10000
    assert main(["evaluate", str(uninterrupted), "--split", "val", "--json"]) == 0
    assert (json.loads(capsys.readouterr().out)["accuracy"]
            == history["val_accuracy"][-1])
    assert main(["evaluate", str(uninterrupted)]) == 0
    assert "mnist-sample test: accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "match"), [
    (["--split", "tset"], "did you mean 'test'"),
    (["--model-file", "nope.npz"], "no model file nope.npz"),
])
def test_evaluate_bad_input_exits_2(uninterrupted, capsys, argv, match):
    assert main(["evaluate", str(uninterrupted), *argv]) == 2
    assert match in capsys.readouterr().err


def test_predict_npz_and_png(uninterrupted, tmp_path, capsys):
    from PIL import Image

    from groundup.data import load_mnist_sample

    (_, _), (x, t) = load_mnist_sample(normalize=False, flatten=False)
    np.savez(tmp_path / "x.npz", x=x[:20])
    assert main(["predict", str(uninterrupted), str(tmp_path / "x.npz"), "--top", "2"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "index,label,probability,label2,probability2"
    labels = np.array([int(r.split(",")[1]) for r in rows[1:]])
    model = io.load(uninterrupted / "model.npz")
    expected = model.predict(x[:20].reshape(20, -1).astype(np.float32) / 255).argmax(axis=1)
    np.testing.assert_array_equal(labels, expected)
    assert np.mean(labels == t[:20]) >= 0.8
    # a dark-on-light, 5x larger picture of a confidently recognized digit
    probs = [float(r.split(",")[2]) for r in rows[1:]]
    i = int(np.argmax(np.where(labels == t[:20], probs, 0)))
    Image.fromarray(255 - x[i, 0]).resize((140, 140)).save(tmp_path / "digit.png")
    assert main(["predict", str(uninterrupted), str(tmp_path / "digit.png")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[1] == str(t[i])


@pytest.mark.parametrize(("make_input", "extra", "match"), [
    (lambda p: p / "none.npz", [], "no such file"),
    (lambda p: _write(p / "notes.txt", b"hello"), [], "INPUT must be an .npz or image file"),
    (lambda p: _write(p / "bad.png", b"not a png"), [], "INPUT must be a readable image file"),
    (lambda p: _npz(p / "w.npz", a=np.zeros((2, 10)), b=np.zeros(3)), [],
     "an .npz with an array named 'x'"),
    (lambda p: _npz(p / "s.npz", x=np.zeros((2, 10))), [], "INPUT must be samples of 784"),
    (lambda p: _npz(p / "k.npz", x=np.zeros((1, 784))), ["--top", "11"], "--top must be in"),
])
def test_predict_bad_input_exits_2(uninterrupted, tmp_path, capsys, make_input, extra, match):
    assert main(["predict", str(uninterrupted), str(make_input(tmp_path)), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def _write(path, data):
    path.write_bytes(data)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_l1_builds_a_regularized_dense_model(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist-sample", "--hidden", "32", "--epochs", "1",
                 "--l1", "1e-4", "--weight-decay", "0.01", "--out", str(out)]) == 0
    model = io.load(out / "model.npz")
    w = [v for k, v in model.params.items() if k.startswith("W")]
    expected = sum(1e-4 * np.abs(a).sum() + 0.005 * np.square(a).sum() for a in w)
    assert model.regularization_loss() == pytest.approx(expected, rel=1e-5)


def test_l1_is_refused_for_conv_models(tmp_path, capsys):
    assert main(["train", "--model", "convnet", "--dataset", "mnist-sample", "--l1", "0.1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--l1 must be 0 for conv models" in capsys.readouterr().err


def test_early_stopping_stops_patience_epochs_after_the_best_and_says_which_it_restored(
        tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist-sample", "--hidden", "30", "--lr", "0.01",
                 "--epochs", "30", "--early-stopping", "1", "--monitor", "val_accuracy",
                 "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    acc = history["val_accuracy"]
    best = int(np.argmax(acc))  # the first maximum: later ties are no improvement
    assert len(acc) == best + 2 < 30
    assert f"restored the weights of epoch {best + 1};" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["monitor"] == "val_accuracy"


def test_early_stopping_monitor_is_checked(tmp_path, capsys):
    assert main(["train", "--early-stopping", "2", "--monitor", "val_acc",
                 "--out", str(tmp_path / "r")]) == 2
    assert "did you mean 'val_accuracy'" in capsys.readouterr().err


def test_a_misspelled_flag_gets_did_you_mean(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--learning-rat", "0.1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --learning-rat 0.1" in err and "--" in err
    with pytest.raises(SystemExit):
        main(["experiment", "run", "overfit", "--seed-s", "3"])
    assert "did you mean --seeds?" in capsys.readouterr().err


def test_help_texts_show_names_without_rst_quotes(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    out = capsys.readouterr().out
    assert "groundup experiment" in out and "``" not in out


def test_data_without_an_action_says_what_to_type(capsys):
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert "groundup data list" in err and "None" not in err


# -- your own data: a test split from the command line, paths that survive a cd ----------

def _digits_csv(path, n=400, seed=0):
    from groundup.data import load_mnist_sample

    (x, t), _ = load_mnist_sample(normalize=False, flatten=True)
    rows = np.concatenate([t[:n, None].astype(np.int64), x[:n].astype(np.int64)], axis=1)
    np.savetxt(path, rows, fmt="%d", delimiter=",")
    return path


def test_a_csv_without_a_test_split_trains_with_test_fraction(tmp_path, monkeypatch):
    data = _digits_csv(tmp_path / "digits.csv")
    configs = []
    for seed in (1, 2):
        out = tmp_path / f"run{seed}"
        assert main(["train", "--dataset", str(data), "--test-fraction", "0.25", "--epochs",
                     "1", "--hidden", "16", "--seed", str(seed), "--out", str(out)]) == 0
        configs.append(json.loads((out / "config.json").read_text()))
    for config in configs:
        assert config["n_test"] == 100 and config["n_train"] + config["n_val"] == 300
        assert config["data_source"]["test_split"] == {"fraction": 0.25, "seed": 0}
    # evaluate from another directory, on the same test set, with a relative path given
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert configs[0]["dataset"] == str(data.resolve())
    assert main(["evaluate", str(tmp_path / "run1")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run1"), "--epochs", "2"]) == 0


def test_test_data_gives_the_test_set_of_a_csv(tmp_path, capsys):
    train = _digits_csv(tmp_path / "train.csv", n=300)
    test = _digits_csv(tmp_path / "test.csv", n=50)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(train), "--test-data", str(test), "--epochs", "1",
                 "--hidden", "16", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["n_test"] == 50


def test_a_csv_without_a_test_split_says_how_to_make_one(tmp_path, capsys):
    data = _digits_csv(tmp_path / "digits.csv", n=50)
    assert main(["train", "--dataset", str(data), "--out", str(tmp_path / "r")]) == 2
    assert "--test-fraction 0.2" in capsys.readouterr().err


def test_test_fraction_is_refused_when_the_data_has_a_test_split(tmp_path, capsys):
    assert main(["train", "--test-fraction", "0.2", "--dataset", "mnist-sample",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--test-fraction must be left out when the data set has a test split" in \
        capsys.readouterr().err


def test_no_fast_trains_on_the_reference_path_and_resume_keeps_the_choice(tmp_path, capsys):
    out = tmp_path / "ref"
    argv = ["train", "--dataset", "mnist-sample", "--model", "two-layer", "--epochs", "1"]
    assert main([*argv, "--no-fast", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["fast"] is False
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0  # stays reference
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]
    fast_run = tmp_path / "fast"
    assert main([*argv, "--out", str(fast_run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(fast_run), "--no-fast", "--epochs", "2"]) == 2
    assert "--no-fast must be left out as in the run being resumed" in capsys.readouterr().err
