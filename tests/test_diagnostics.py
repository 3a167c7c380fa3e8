"""Diagnostics, hints and summary: what they measure, and that they change no training."""

import json
import math

import numpy as np
import pytest

from groundup import hints as hints_module
from groundup.cli import main
from groundup.data import load_mnist_sample
from groundup.diagnostics import Diagnostics, load, probe_indices
from groundup.hints import hints
from groundup.models import MultiLayerNetExtend, Sequential, SimpleConvNet
from groundup.optimizers import SGD, Adam
from groundup.regularizers import L2
from groundup.summary import rows, summary
from groundup.train import Trainer


@pytest.fixture(scope="module")
def mnist():
    (x, t), _ = load_mnist_sample(normalize=True, flatten=True)
    return x, t


def test_probe_indices_are_stratified_and_seeded():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    idx = probe_indices(labels, 100, seed=3)
    assert np.bincount(labels[idx]).tolist() == [10, 20, 30, 40]
    assert len(set(idx.tolist())) == 100
    assert np.array_equal(idx, probe_indices(labels, 100, seed=3))
    assert not np.array_equal(idx, probe_indices(labels, 100, seed=4))


def test_diagnostics_validates_arguments(tmp_path):
    x, t = np.zeros((4, 2)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="Diagnostics: probe_size must be"):
        Diagnostics(x, t, tmp_path, probe_size=0)
    with pytest.raises(ValueError, match="Diagnostics: every must be"):
        Diagnostics(x, t, tmp_path, every=0)
    with pytest.raises(ValueError, match="Diagnostics: len"):
        Diagnostics(x, t[:3], tmp_path)


def _fit(model, x, t, directory, diagnostics, fast=True, epochs=2, **options):
    callbacks = [Diagnostics(x, t, directory, seed=0, probe_size=64, **options)] \
        if diagnostics else []
    trainer = Trainer(model, Adam(lr=1e-3), callbacks=callbacks, rng=0, fast=fast)
    history = trainer.fit(x, t, epochs=epochs, batch_size=50, validation=(x[:100], t[:100]))
    arrays = {k: v.copy() for k, v in {**model.params, **model.state}.items()}
    return history.to_dict(), arrays


@pytest.mark.parametrize("kind,fast", [("mlp-bn-dropout", True), ("mlp-bn-dropout", False),
                                       ("convnet", True)])
def test_diagnostics_change_no_training_result(mnist, tmp_path, kind, fast):
    x, t = mnist[0][:400], mnist[1][:400]

    def model():
        if kind == "convnet":
            return SimpleConvNet((1, 28, 28), hidden_size=20, output_size=10, rng=0)
        return MultiLayerNetExtend(784, [40, 40], 10, use_batchnorm=True, use_dropout=True,
                                   dropout_ration=0.2, rng=0)

    xs = x.reshape(-1, 1, 28, 28) if kind == "convnet" else x
    plain = _fit(model(), xs, t, tmp_path / "a", False, fast)
    seen = _fit(model(), xs, t, tmp_path / "b", True, fast)
    assert plain[0] == seen[0]
    assert plain[1].keys() == seen[1].keys()
    for key in plain[1]:
        assert np.array_equal(plain[1][key], seen[1][key]), key
    assert (tmp_path / "b" / "diagnostics.json").is_file()


@pytest.mark.parametrize("fast", [True, False])
def test_diagnostics_every_steps_points_and_no_change(mnist, tmp_path, fast):
    x, t = mnist[0][:400], mnist[1][:400]  # 8 steps of 50 an epoch

    def model():
        return MultiLayerNetExtend(784, [40, 40], 10, use_batchnorm=True, use_dropout=True,
                                   dropout_ration=0.2, rng=0)

    plain = _fit(model(), x, t, tmp_path / "a", False, fast, epochs=2)
    seen = _fit(model(), x, t, tmp_path / "b", True, fast, epochs=2, every_steps=3)
    assert plain[0] == seen[0]
    for key in plain[1]:
        assert np.array_equal(plain[1][key], seen[1][key]), key
    points = load(tmp_path / "b")[0]["points"]
    assert [p["step"] for p in points] == [0, 3, 6, 9, 12, 15]
    assert [p["epoch"] for p in points] == [0, 0.375, 0.75, 1.125, 1.5, 1.875]
    assert all(p["params"]["W1"]["update_ratio"] > 0 for p in points[1:])
    assert points[3]["logs"] == {}  # mid-epoch: no epoch metrics yet


def test_diagnostics_every_steps_on_the_command_line(tmp_path):
    run = tmp_path / "run"
    # the bundled sample's 5,000 digits (4,500 after the validation split), batch 100
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--diagnostics",
                 "--diagnostics-every-steps", "15", "--out", str(run)]) == 0
    steps = [p["step"] for p in load(run)[0]["points"]]
    assert steps == [0, 15, 30, 45]
    assert main(["train", "--dataset", "mnist-sample", "--diagnostics",
                 "--diagnostics-every-steps", "0", "--out", str(tmp_path / "b")]) == 2


def test_diagnostics_files_hold_every_measure(mnist, tmp_path):
    x, t = mnist[0][:300].reshape(-1, 1, 28, 28), mnist[1][:300]
    net = SimpleConvNet((1, 28, 28), hidden_size=20, output_size=10, rng=0)
    _fit(net, x, t, tmp_path, True, epochs=2)
    summary_, arrays = load(tmp_path)
    assert [p["epoch"] for p in summary_["points"]] == [0, 1, 2]
    first, last = summary_["points"][0], summary_["points"][-1]
    assert summary_["ln_classes"] == pytest.approx(math.log(10))
    assert first["loss"] == pytest.approx(math.log(10), rel=0.05)  # std 0.01 weights
    assert first["params"]["W1"]["update_ratio"] is None
    for stats in last["params"].values():
        assert stats["grad_norm"] > 0 and stats["update_ratio"] > 0
    assert 0 <= last["layers"]["Relu1"]["zero_fraction"] <= 1
    assert "dead_fraction" in last["layers"]["Relu2"]
    assert arrays["hist/activation/Relu2"].shape == (3, 40)
    assert arrays["hist/gradient/W1"].sum(axis=1).tolist() == [30 * 25] * 3
    assert arrays["image/filters"].shape == (30, 1, 5, 5)
    assert arrays["image/feature_maps"].shape == (30, 24, 24)
    with np.load(tmp_path / "diagnostics.npz", allow_pickle=False) as data:
        assert "probe_indices" in data.files
    json.loads((tmp_path / "diagnostics.json").read_text())  # strict JSON (no NaN)


def _net(activation, init, depth):
    net = Sequential((784,), rng=0)
    for _ in range(depth):
        net.add("dense", units=100, init=init).add(activation)
    return net.add("dense", units=10, init=init)


def _rules(mnist, tmp_path, net, optimizer, n, epochs):
    x, t = mnist
    val = (x[3000:3600], t[3000:3600])
    trainer = Trainer(net, optimizer, callbacks=[Diagnostics(x[:n], t[:n], tmp_path)], rng=0)
    trainer.fit(x[:n], t[:n], epochs=epochs, validation=val)
    summary_, _ = load(tmp_path)
    found = hints(summary_)
    for hint in found:
        assert "(book " in hint.line() and "\n" not in hint.line()
    return {h.rule for h in found}, summary_


def test_hints_sigmoid_std_1_saturates(mnist, tmp_path):
    rules, _ = _rules(mnist, tmp_path, _net("sigmoid", 1.0, 5), SGD(lr=0.01), 2000, 2)
    assert {"saturated", "initial_loss"} <= rules


def test_hints_relu_std_001_vanishes(mnist, tmp_path):
    rules, summary_ = _rules(mnist, tmp_path, _net("relu", 0.01, 5), SGD(lr=0.01), 2000, 2)
    assert {"vanishing", "update_ratio"} <= rules
    layers = summary_["points"][0]["layers"]
    assert layers["Relu5"]["std"] < 1e-3 * layers["Relu1"]["std"]


def test_hints_lr_too_large_explodes(mnist, tmp_path):
    rules, _ = _rules(mnist, tmp_path, _net("relu", "he_normal", 2), SGD(lr=3.0), 2000, 2)
    assert "exploding" in rules
    hint = next(h for h in hints(load(tmp_path)[0]) if h.rule == "exploding")
    assert "clipnorm" in hint.text


def test_hints_300_samples_overfit(mnist, tmp_path):
    rules, _ = _rules(mnist, tmp_path, _net("relu", "he_normal", 2), Adam(lr=1e-3), 300, 25)
    assert "overfitting" in rules


def test_hints_healthy_run_raises_none(mnist, tmp_path):
    rules, _ = _rules(mnist, tmp_path, _net("relu", "he_normal", 2), Adam(lr=1e-3), 3000, 4)
    assert rules == set()


def test_hints_non_finite_and_exploding_gradient_rules():
    def point(epoch, grad):
        return {"epoch": epoch, "loss": 2.3, "layers": {},
                "params": {"W1": {"grad_norm": grad, "weight_norm": 1.0, "update_ratio": 1e-3}}}

    summary_ = {"classes": 10, "ln_classes": math.log(10),
                "points": [point(0, 1e-2), point(1, None)]}
    found = {h.rule: h for h in hints(summary_, {"loss": [2.0, float("nan")]})}
    assert "non-finite at epoch 2" in found["non_finite"].text
    assert "non-finite" in found["exploding"].text
    summary_["points"][1] = point(1, 1e2)
    assert hints_module.exploding(summary_, {}).rule == "exploding"


def test_summary_counts_shapes_and_regularizers():
    net = Sequential((784,), rng=0)
    net.add("dense", units=50, regularizer=L2(0.01)).add("batchnorm").add("relu")
    net.add("dropout", dropout_ratio=0.5).add("dense", units=10)
    text = summary(net)
    table = rows(net)
    assert [r["output_shape"] for r in table][:2] == [(None, 50), (None, 50)]
    assert table[0]["trainable"] == 784 * 50 + 50 and table[1]["non_trainable"] == 100
    assert "Total params: 39,960" in text  # 39,250 + 100 + 100 + 510
    assert "Trainable params: 39,860" in text and "Non-trainable params: 100" in text
    assert "W1: L2" in text and "dtype: float32" in text
    conv = rows(SimpleConvNet((1, 28, 28), rng=0))
    assert conv[0]["output_shape"] == (None, 30, 24, 24)


def test_summary_command_and_train_diagnostics_flag(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--diagnostics",
                 "--out", str(run)])
    assert code == 0
    assert (run / "diagnostics.json").is_file() and (run / "evaluation.json").is_file()
    capsys.readouterr()
    assert main(["summary", str(run)]) == 0
    assert "Affine1 (Affine)" in capsys.readouterr().out
    assert main(["summary", str(run / "model.npz")]) == 0
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    assert main(["train", "--diagnostics-every", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--diagnostics-every must be" in capsys.readouterr().err


def test_tensorboard_event_files_read_back_across_resume(tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run, logs = tmp_path / "run", tmp_path / "tb"
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--tensorboard",
                 str(logs), "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0

    def read(name):
        events = accumulator.EventAccumulator(str(logs / "run" / name),
                                              size_guidance={"histograms": 0})
        events.Reload()
        return events

    train, validation = read("train"), read("validation")
    history = json.loads((run / "history.json").read_text())
    assert [e.step for e in train.Scalars("epoch_loss")] == [1, 2]
    assert [e.value for e in train.Scalars("epoch_loss")] == pytest.approx(history["loss"])
    assert [e.value for e in validation.Scalars("epoch_accuracy")] == \
        pytest.approx(history["val_accuracy"])
    assert "W1" in train.Tags()["histograms"]
    assert [e.step for e in train.Histograms("W1")] == [1, 2]


def test_diagnostics_continue_across_resume(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--diagnostics",
                 "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    summary_, arrays = load(run)
    assert [p["epoch"] for p in summary_["points"]] == [0, 1, 2, 3]
    assert arrays["hist/activation/Relu1"].shape[0] == 4


def test_sequential_summary_is_the_summary_table():
    from groundup.models import MultiLayerNetExtend
    from groundup.summary import summary

    model = MultiLayerNetExtend(784, [20], 10, use_batchnorm=True, rng=0)
    assert model.summary() == summary(model)
    assert "Total params:" in model.summary()
