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
