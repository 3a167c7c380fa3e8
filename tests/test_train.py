import io as _io
import json
import math
import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from groundup import checkpoint, io, optimizers, schedules
from groundup.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
)
from groundup.data import load_mnist_sample
from groundup.models import MultiLayerNetExtend
from groundup.rng import GlobalRNG
from groundup.train import Trainer


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = load_mnist_sample(normalize=True, flatten=True)
    return x[:600], t[:600], xt[:300], tt[:300]


def make(seed=3, *, shared_rng=True, dropout=True, lr=1e-3, optimizer="adam"):
    rng = np.random.default_rng(seed)
    model_rng = rng if shared_rng else np.random.default_rng(seed + 100)
    model = MultiLayerNetExtend(784, [40, 30], 10, weight_init_std="he_normal",
                                use_dropout=dropout, dropout_ration=0.2, use_batchnorm=True,
                                rng=model_rng)
    return model, optimizers.get(optimizer, lr=lr), rng


def standard_callbacks():
    return [EarlyStopping("val_loss", patience=5, restore_best_weights=True),
            ReduceLROnPlateau(patience=1, factor=0.5)]


class InterruptAt(Callback):
    """Send SIGINT to this process after the given update, as Ctrl-C would."""

    def __init__(self, epoch, step):
        self.at = (epoch, step)

    def on_batch_end(self, trainer, epoch, step, loss):
        if (epoch, step) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def params_of(model):
    return {k: v.copy() for k, v in io.model_arrays(model).items()}


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
@pytest.mark.parametrize("shared_rng", [True, False])
def test_ctrl_c_mid_epoch_then_resume_equals_uninterrupted(digits, tmp_path, sampling,
                                                           shared_rng):
    x, t, xv, tv = digits
    fit = {"epochs": 3, "batch_size": 50, "validation": (xv, tv), "sampling": sampling}
    model, opt, rng = make(shared_rng=shared_rng)
    reference = Trainer(model, opt, callbacks=standard_callbacks(), rng=rng).fit(x, t, **fit)
    expected = params_of(model)

    model, opt, rng = make(shared_rng=shared_rng)
    trainer = Trainer(model, opt, callbacks=[*standard_callbacks(), InterruptAt(1, 4)], rng=rng)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x, t, checkpoint_dir=tmp_path / "ckpt", **fit)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    model, opt, rng = make(shared_rng=shared_rng)
    resumed = Trainer(model, opt, callbacks=standard_callbacks(), rng=rng)
    history = resumed.fit(x, t, checkpoint_dir=tmp_path / "ckpt", resume=True, **fit)
    assert history.to_dict() == reference.to_dict()
    assert_same_arrays(params_of(model), expected)


def test_resume_at_epoch_boundary_can_extend_the_run(digits, tmp_path):
    x, t, xv, tv = digits
    model, opt, rng = make()
    Trainer(model, opt, callbacks=standard_callbacks(), rng=rng).fit(
        x, t, epochs=4, validation=(xv, tv))
    expected = params_of(model)

    model, opt, rng = make()
    Trainer(model, opt, callbacks=standard_callbacks(), rng=rng).fit(
        x, t, epochs=2, validation=(xv, tv), checkpoint_dir=tmp_path / "c")
    model, opt, rng = make()
    trainer = Trainer(model, opt, callbacks=standard_callbacks(), rng=rng)
    trainer.load_checkpoint(tmp_path / "c")
    assert trainer.epoch == 2 and len(trainer.history) == 2
    history = trainer.fit(x, t, epochs=4, validation=(xv, tv), checkpoint_dir=tmp_path / "c")
    assert history["epoch"] == [1, 2, 3, 4]
    assert_same_arrays(params_of(model), expected)


def test_checkpoint_falls_back_to_the_previous_copy_after_a_crash_between_renames(
        digits, tmp_path):
    x, t, xv, tv = digits
    model, opt, rng = make()
    Trainer(model, opt, rng=rng).fit(x, t, epochs=1, checkpoint_dir=tmp_path / "c")
    os.replace(tmp_path / "c", tmp_path / ".c-old")
    assert checkpoint.find(tmp_path / "c") == tmp_path / ".c-old"
    model, opt, rng = make()
    trainer = Trainer(model, opt, rng=rng)
    trainer.load_checkpoint(tmp_path / "c")
    assert trainer.epoch == 1
    assert not list(tmp_path.glob(".c-new-*"))


def test_resume_errors_are_one_line(digits, tmp_path):
    x, t, xv, tv = digits
    model, opt, rng = make()
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        Trainer(model, opt, rng=rng).load_checkpoint(tmp_path / "none")
    Trainer(model, opt, callbacks=standard_callbacks(), rng=rng).fit(
        x, t, epochs=1, validation=(xv, tv), checkpoint_dir=tmp_path / "c")
    model, opt, rng = make()
    with pytest.raises(ValueError, match="callbacks must be with state: the checkpoint's"):
        Trainer(model, opt, rng=rng).load_checkpoint(tmp_path / "c")
    other, opt, rng = make(shared_rng=False)
    with pytest.raises(ValueError, match="rng must be the checkpoint's generators"):
        Trainer(other, opt, callbacks=standard_callbacks(), rng=rng).load_checkpoint(
            tmp_path / "c")
    (tmp_path / "c" / "state.json").write_text("{broken")
    with pytest.raises(ValueError, match="state.json must be valid JSON"):
        Trainer(model, opt, rng=rng).load_checkpoint(tmp_path / "c")
    with pytest.raises(RuntimeError, match="checkpoints need a numpy.random.Generator"):
        Trainer(model, opt, rng=GlobalRNG()).fit(x, t, epochs=1, checkpoint_dir=tmp_path / "g")
    with pytest.raises(ValueError, match="checkpoint_dir must be a directory with resume"):
        Trainer(model, opt, rng=rng).fit(x, t, epochs=1, resume=True)


def test_early_stopping_restores_the_best_checkpointed_weights(digits, tmp_path):
    x, t, xv, tv = digits
    # A large learning rate on 600 images overfits fast: val_loss turns up after a few epochs.
    model, opt, rng = make(dropout=False, lr=0.01)
    stopper = EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    best_file = tmp_path / "best.npz"
    saver = ModelCheckpoint(best_file, monitor="val_loss", save_best_only=True)
    trainer = Trainer(model, opt, callbacks=[stopper, saver], rng=rng)
    history = trainer.fit(x, t, epochs=30, validation=(xv, tv))
    assert trainer.stop_training and stopper.stopped_epoch is not None
    best = int(np.argmin(history["val_loss"]))
    assert stopper.best_epoch == saver.best_epoch == best
    assert len(history) == best + 1 + stopper.patience  # Keras: `patience` epochs past the best
    np.testing.assert_array_equal(model.predict(xv), io.load(best_file).predict(xv))
    assert "early stopping: val_loss did not improve for 2 epochs" in trainer.stop_reason
    assert stopper.restored_epoch == best


def test_model_checkpoint_pattern_writes_one_file_per_epoch(digits, tmp_path):
    x, t, xv, tv = digits
    model, opt, rng = make()
    pattern = str(tmp_path / "m-{epoch:02d}-{val_accuracy:.2f}.npz")
    Trainer(model, opt, callbacks=[ModelCheckpoint(pattern)], rng=rng).fit(
        x, t, epochs=2, validation=(xv, tv))
    assert sorted(p.name[:4] for p in tmp_path.glob("m-*.npz")) == ["m-01", "m-02"]
    bad = ModelCheckpoint(str(tmp_path / "{nope}.npz"))
    with pytest.raises(ValueError, match="filepath must be a pattern naming recorded metrics"):
        Trainer(model, opt, callbacks=[bad], rng=rng).fit(x, t, epochs=1)


def test_terminate_on_nan_stops_before_the_bad_update_and_keeps_the_last_checkpoint(
        digits, tmp_path):
    x, t, _, _ = digits

    class Poison(Callback):  # the loss turns non-finite in epoch 2, step 3
        def on_batch_begin(self, trainer, epoch, step):
            if (epoch, step) == (1, 2):
                trainer.model.params["W1"][...] = np.inf

    model, opt, rng = make(dropout=False)
    trainer = Trainer(model, opt, callbacks=[Poison()], rng=rng)
    history = trainer.fit(x, t, epochs=5, checkpoint_dir=tmp_path / "c")
    assert trainer.diverged and len(history) == 1
    assert "non-finite loss" in trainer.stop_reason
    assert "epoch 2, step 3" in trainer.stop_reason
    assert math.isfinite(history["loss"][0])
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 0)  # the last good checkpoint survives


def test_learning_rate_scheduler_per_epoch_and_per_step(digits):
    x, t, _, _ = digits
    schedule = schedules.StepDecay(0.01, step_size=1, gamma=0.5)
    model, opt, rng = make(optimizer="sgd")
    history = Trainer(model, opt, callbacks=[LearningRateScheduler(schedule)], rng=rng).fit(
        x, t, epochs=3, batch_size=100)
    assert history["lr"] == [0.01, 0.005, 0.0025]

    seen = []

    class Spy(Callback):
        def on_batch_end(self, trainer, epoch, step, loss):
            seen.append(trainer.optimizer.lr)

    cosine = schedules.CosineDecay(0.1, period=12)
    model, opt, rng = make(optimizer="sgd")
    Trainer(model, opt, callbacks=[LearningRateScheduler(cosine, unit="step"), Spy()],
            rng=rng).fit(x, t, epochs=2, batch_size=100)
    assert seen == [cosine(i) for i in range(12)]
    with pytest.raises(TypeError, match="schedule must be a callable"):
        LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="unit must be one of"):
        LearningRateScheduler(cosine, unit="batch")


def test_reduce_lr_on_plateau_callback_halves_after_patience():
    opt = optimizers.SGD(lr=0.1)
    trainer = SimpleNamespace(optimizer=opt)
    cb = ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_delta=0.0)
    cb.on_train_begin(trainer)
    lrs = []
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.5):
        cb.on_epoch_end(trainer, 0, {"val_loss": loss})
        lrs.append(opt.lr)
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    restored = ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_delta=0.0)
    restored.load_state_dict(cb.state_dict())
    assert restored.state_dict() == cb.state_dict()


@pytest.mark.parametrize("make_callback", [
    lambda: EarlyStopping("val_los"),
    lambda: ModelCheckpoint("m.npz", monitor="val_los", save_best_only=True),
    lambda: ReduceLROnPlateau("val_los"),
])
def test_unknown_monitor_lists_the_available_keys(digits, tmp_path, make_callback):
    x, t, xv, tv = digits
    model, opt, rng = make()
    trainer = Trainer(model, opt, callbacks=[make_callback()], rng=rng)
    with pytest.raises(ValueError, match="monitor must be a recorded metric") as info:
        trainer.fit(x, t, epochs=1, validation=(xv, tv))
    assert "did you mean 'val_loss'" in str(info.value)
    assert "val_accuracy" in str(info.value)


def test_loggers_write_the_history_after_every_epoch(digits, tmp_path):
    x, t, xv, tv = digits
    model, opt, rng = make()
    history = Trainer(model, opt, rng=rng, callbacks=[
        CSVLogger(tmp_path / "h.csv"), JSONLogger(tmp_path / "h.json")]).fit(
        x, t, epochs=2, validation=(xv, tv))
    assert json.loads((tmp_path / "h.json").read_text()) == history.to_dict()
    rows = (tmp_path / "h.csv").read_text().splitlines()
    assert rows[0].split(",") == history.keys() and len(rows) == 3
    assert float(rows[2].split(",")[1]) == history["loss"][1]


def test_progress_bar_prints_lines_when_not_a_terminal_and_a_bar_when_asked(
        digits, monkeypatch):
    x, t, _, _ = digits
    stream = _io.StringIO()
    model, opt, rng = make()
    Trainer(model, opt, callbacks=[ProgressBar(stream=stream)], rng=rng).fit(x, t, epochs=2)
    lines = stream.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    # aligned: every column starts at the same place in every line, with fixed precision
    assert lines[0].index("train_acc") == lines[1].index("train_acc")
    assert "test_" not in lines[0] and "lr  1.00e-" in lines[0]

    class FakeTerminal(_io.StringIO):
        def isatty(self):
            return True

    pytest.importorskip("tqdm")
    monkeypatch.setenv("CI", "true")
    tty = FakeTerminal()
    Trainer(model, opt, callbacks=[ProgressBar(stream=tty)], rng=rng).fit(x, t, epochs=1)
    assert "\r" not in tty.getvalue() and "step" not in tty.getvalue()  # CI=true: lines only
    monkeypatch.delenv("CI")
    tty = FakeTerminal()
    Trainer(model, opt, callbacks=[ProgressBar(stream=tty)], rng=rng).fit(x, t, epochs=1)
    assert "step" in tty.getvalue() and "epoch 1/1  loss" in tty.getvalue()


def test_epoch_lines_say_when_the_loss_includes_the_weight_penalty(digits):
    x, t, _, _ = digits
    stream = _io.StringIO()
    model = MultiLayerNetExtend(784, [20], 10, weight_decay_lambda=0.1, rng=0)
    Trainer(model, optimizers.SGD(lr=0.01), callbacks=[ProgressBar(stream=stream)],
            rng=0).fit(x, t, epochs=1)
    assert stream.getvalue().startswith("epoch 1/1  loss+pen ")


def test_trainer_rejects_inputs_that_do_not_fit_the_model(digits):
    x, t, _, _ = digits
    model, opt, rng = make()
    with pytest.raises(ValueError, match=r"x_train must be of shape \(N, 784\)"):
        Trainer(model, opt, rng=rng).fit(x.reshape(-1, 1, 28, 28), t, epochs=1)
    with pytest.raises(TypeError, match="callbacks must be Callback instances"):
        Trainer(model, opt, callbacks=[print], rng=rng)


def _scripted(stopper, values):
    """Feed ``values`` as val_loss, one per epoch, with W = epoch; the epochs that ran."""
    model = SimpleNamespace(params={"W": np.zeros(1)}, state={})
    trainer = SimpleNamespace(model=model, stop_training=False, stop_reason=None)
    stopper.on_train_begin(trainer)
    ran = 0
    for epoch, value in enumerate(values):
        model.params["W"][...] = epoch
        ran += 1
        stopper.on_epoch_end(trainer, epoch, {"val_loss": value})
        if trainer.stop_training:
            break
    stopper.on_train_end(trainer)
    return ran, float(model.params["W"][0])


@pytest.mark.parametrize(("patience", "ran"), [(0, 4), (1, 4), (2, 5), (3, 6)])
def test_early_stopping_stops_patience_epochs_after_the_best_as_keras(patience, ran):
    values = [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0]  # best at epoch 2 (0-based)
    got, restored = _scripted(EarlyStopping(patience=patience, restore_best_weights=True),
                              values)
    assert (got, restored) == (ran, 2.0)


def test_early_stopping_restores_the_best_weights_without_stopping_early():
    stopper = EarlyStopping(patience=10, restore_best_weights=True)
    assert _scripted(stopper, [3, 1, 2, 2.5]) == (4, 1.0)
    assert stopper.stopped_epoch is None and stopper.restored_epoch == 1


def test_early_stopping_baseline_keeps_counting_until_it_is_beaten():
    values = [3, 3.5, 4, 4.5]
    assert _scripted(EarlyStopping(patience=2, restore_best_weights=True), values) == (3, 0.0)
    # epoch 0 improves on nothing but not on the baseline, so its wait is not reset
    stopper = EarlyStopping(patience=2, restore_best_weights=True, baseline=1.0)
    assert _scripted(stopper, values) == (2, 0.0)


def test_early_stopping_start_from_epoch_ignores_the_warm_up():
    stopper = EarlyStopping(patience=1, start_from_epoch=3)
    ran, _ = _scripted(stopper, [1, 2, 3, 4, 5, 6, 7])
    assert ran == 5  # epochs 0-2 not monitored; best at 3, stop at 4


def test_early_stopping_loads_a_state_saved_by_earlier_versions():
    stopper = EarlyStopping(patience=2)
    stopper.load_state_dict({"best": 0.5, "best_epoch": 3, "wait": 1, "stopped_epoch": None})
    trainer = SimpleNamespace(model=None, stop_training=False, stop_reason=None)
    stopper.on_epoch_end(trainer, 5, {"val_loss": 0.6})
    assert trainer.stop_training and stopper.wait == 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fast_and_reference_training_agree_and_each_runs_its_own_path(digits, optimizer):
    from groundup.fast.trace import tracing

    x, t, xv, tv = digits
    runs = {}
    for fast in (True, False):
        model, opt, rng = make(optimizer=optimizer, lr=0.01 if optimizer == "sgd" else 1e-3)
        with tracing() as ran:
            trainer = Trainer(model, opt, rng=rng, fast=fast)
            history = trainer.fit(x, t, epochs=2, validation=(xv, tv))
        runs[fast] = (history.to_dict(), params_of(model), ran)
    (h_fast, p_fast, ran_fast), (h_ref, p_ref, ran_ref) = runs[True], runs[False]
    assert ran_fast["pack"] >= 1 and ran_fast["optim.packed"] >= 1 and ran_fast["bn.fast"] >= 1
    assert not ran_ref, ran_ref  # the reference path touches no fast piece
    # same draws (shuffles, dropout masks), sums in another order: float32 rounding only;
    # an accuracy may differ by one sample whose two top scores are within that rounding
    sizes = {"train_accuracy": len(x), "val_accuracy": len(xv)}
    for key in h_ref:
        atol = 1 / sizes[key] + 1e-9 if key in sizes else 2e-3
        np.testing.assert_allclose(h_fast[key], h_ref[key], rtol=2e-3, atol=atol, err_msg=key)
    for key in p_ref:
        if key in ("param/b1", "param/b2", "state/running_mean1", "state/running_mean2"):
            # biases feeding batch norm have a zero true gradient: Adam's m / sqrt(v) of pure
            # rounding noise moves them (and the running mean that absorbs them) differently
            # on each path, with no effect on the outputs
            continue
        np.testing.assert_allclose(p_fast[key], p_ref[key], rtol=1e-2, atol=1e-3, err_msg=key)


def test_trainer_fast_must_be_a_bool(digits):
    model, opt, _ = make()
    with pytest.raises(TypeError, match="Trainer: fast must be a bool"):
        Trainer(model, opt, fast="yes")
