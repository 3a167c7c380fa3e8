"""``groundup train``: train a model on MNIST, Fashion-MNIST, the bundled sample or a .npz.

Writes a run directory: ``config.json`` (everything needed to rerun), ``history.json`` and
``history.csv``, ``model.npz``, ``checkpoint/`` (model, optimizer, RNG state and position,
rewritten after every epoch and on Ctrl-C) and ``figures/curves.png``.
``groundup train --resume DIR`` continues a run exactly where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from groundup import __version__, _files, io, optimizers, regularizers, schedules
from groundup._checks import check_choice, suggest, value_error
from groundup.callbacks import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, history_csv
from groundup.cli.train_settings import (
    CLI_LR,
    CONV_MODELS,
    DEFAULT_HIDDEN,
    MODELS,
    OUTPUTS,
    add_arguments,
    resolve_settings,
    settings_of,
    validate,
)
from groundup.io import write_text_atomic
from groundup.models import DeepConvNet, MultiLayerNetExtend, Sequential, SimpleConvNet
from groundup.train import Trainer


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run)


# The --test-fraction split does not depend on --seed: every seed of one data file is
# measured on the same test set.
TEST_SPLIT_SEED = 0


def _load_file(path: str, flatten: bool) -> Any:
    from groundup import data

    loader = data.load_npz if path.endswith(".npz") else data.load_csv
    return loader(path, normalize=True, flatten=flatten)


def load_data(dataset: str, *, flatten: bool, data_dir: str | None, strict: bool,
              test_fraction: float = 0.0,
              test_data: str | None = None) -> tuple[tuple, tuple, dict[str, Any]]:
    """((x_train, t_train), (x_test, t_test), where the data came from as a dict).

    A user file without a test split gets one from ``test_fraction`` (stratified, with
    ``TEST_SPLIT_SEED``) or from the examples of another file, ``test_data``.
    """
    from groundup import data

    if dataset.endswith((".npz", ".csv")):
        loaded = _load_file(dataset, flatten)
    else:
        name = check_choice("train", "--dataset", dataset,
                            ("mnist", "mnist-sample", "fashion-mnist"))
        if name == "mnist-sample":
            loaded = data.load_mnist_sample(normalize=True, flatten=flatten)
        else:
            loader = data.load_mnist if name == "mnist" else data.load_fashion_mnist
            loaded = loader(normalize=True, flatten=flatten, data_dir=data_dir, strict=strict)
    (train, test), info = loaded, loaded.info.to_dict()
    if (test_fraction or test_data) and len(test[0]):
        flag = "--test-fraction" if test_fraction else "--test-data"
        raise value_error("train", flag, "left out when the data set has a test split",
                          test_fraction or test_data, f"{dataset} has {len(test[0])} test "
                          "examples of its own.")
    if test_fraction and test_data:
        raise value_error("train", "--test-data", "left out when --test-fraction is given",
                          test_data)
    if test_fraction:
        train, test = data.train_val_split(*train, test_fraction, seed=TEST_SPLIT_SEED)
        info["test_split"] = {"fraction": test_fraction, "seed": TEST_SPLIT_SEED}
    elif test_data:
        extra = _load_file(test_data, flatten)
        test = (np.concatenate([extra[0][0], extra[1][0]]),
                np.concatenate([extra[0][1], extra[1][1]]))
        info["test_split"] = {"file": test_data}
    if len(test[0]) == 0:
        raise value_error("train", "--dataset", "a data set with a test split (x_test, t_test)",
                          dataset, "or split one off with --test-fraction 0.2, or give "
                          "--test-data FILE.")
    return train, test, info


def build_model(args: argparse.Namespace, input_shape: tuple[int, ...], classes: int,
                rng: np.random.Generator) -> Sequential:
    model = check_choice("train", "--model", args.model, MODELS)
    hidden_text = str(args.hidden or DEFAULT_HIDDEN.get(model, "100"))
    try:
        hidden = [int(h) for h in hidden_text.split(",") if h.strip()]
    except ValueError as exc:
        raise value_error("train", "--hidden", "comma-separated positive ints",
                          hidden_text) from exc
    if not hidden or min(hidden) < 1:
        raise value_error("train", "--hidden", "comma-separated positive ints", hidden_text)
    coupled = 0.0 if args.optimizer.lower() == "adamw" else args.weight_decay
    common = {"rng": rng, "dtype": np.float32}
    if model in CONV_MODELS:
        if len(input_shape) != 3:
            raise value_error("train", "data shape", "images (N, C, H, W) for a conv model",
                              f"={input_shape}")
        if coupled:
            raise value_error("train", "--weight-decay", "0 for conv models (coupled L2 is "
                              "built into the dense models only)", coupled,
                              "use --optimizer adamw for decoupled weight decay.")
        if getattr(args, "l1", 0.0):
            raise value_error("train", "--l1", "0 for conv models", args.l1)
        if model == "convnet":
            return SimpleConvNet(input_shape, hidden_size=hidden[0], output_size=classes,
                                 weight_init_std="he_normal", **common)
        return DeepConvNet(input_shape, hidden_size=hidden[0], output_size=classes, **common)
    l1 = getattr(args, "l1", 0.0)
    if l1:
        # L1 + the book's 0.5·λ·ΣW² (= Keras L2 with c = λ/2) on every weight matrix.
        reg = regularizers.L1L2(l1=l1, l2=coupled / 2)
        net = Sequential((int(np.prod(input_shape)),), **common)
        for units in hidden:
            net.add("dense", units=units, init="he_normal", regularizer=reg)
            if args.batchnorm:
                net.add("batchnorm")
            net.add("relu")
            if args.dropout > 0:
                net.add("dropout", dropout_ratio=args.dropout)
        return net.add("dense", units=classes, init="he_normal", regularizer=reg)
    return MultiLayerNetExtend(int(np.prod(input_shape)), hidden, classes,
                               weight_init_std="he_normal", weight_decay_lambda=coupled,
                               use_dropout=args.dropout > 0, dropout_ration=args.dropout,
                               use_batchnorm=args.batchnorm, **common)


def build_optimizer(args: argparse.Namespace) -> Any:
    kwargs: dict[str, Any] = dict(getattr(args, "optimizer_args", None) or {})
    if args.lr is not None:
        kwargs["lr"] = args.lr
    elif args.optimizer.lower() in CLI_LR:
        kwargs.setdefault("lr", CLI_LR[args.optimizer.lower()])
    if args.optimizer.lower() == "adamw":
        kwargs["weight_decay"] = args.weight_decay
    for clip in ("clipnorm", "clipvalue"):
        if getattr(args, clip, None) is not None:
            kwargs[clip] = getattr(args, clip)
    return optimizers.get(args.optimizer, **kwargs)


def build_callbacks(args: argparse.Namespace, optimizer: Any) -> list[Any]:
    callbacks: list[Any] = []
    schedule = getattr(args, "schedule", None)
    if schedule:
        spec = dict(schedule)
        name = spec.pop("name", None)
        if not isinstance(name, str):
            raise value_error("train", "[schedule] name", "a schedule name", name,
                              suggest("", schedules.names()))
        unit = spec.pop("unit", "epoch")
        spec.setdefault("lr", float(optimizer.lr))
        callbacks.append(LearningRateScheduler(schedules.get(name, **spec), unit=unit))
    plateau = getattr(args, "reduce_lr_on_plateau", None)
    if plateau:
        callbacks.append(ReduceLROnPlateau(**plateau))
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(getattr(args, "monitor", None) or "val_loss",
                                       patience=args.early_stopping,
                                       restore_best_weights=True))
    return callbacks


def write_history(run_dir: Path, history: dict[str, list[float]]) -> None:
    write_text_atomic(run_dir / "history.json", json.dumps(history, indent=2) + "\n")
    write_text_atomic(run_dir / "history.csv", history_csv(history))


def _where(epoch: int, step: int) -> str:
    """A training position in words: ``epoch`` epochs done and ``step`` steps of the next."""
    return f"epoch {epoch + 1} after step {step}" if step else f"the end of epoch {epoch}"


def _checkpoint_position(ckpt_dir: Path) -> str:
    """Where the checkpoint on disk stands, in words."""
    from groundup import checkpoint

    where_is = checkpoint.position(ckpt_dir)
    if where_is is None:
        return "no checkpoint was written yet"
    found, epoch, step = where_is
    where = _where(epoch, step)
    return f"the checkpoint in {found} is at {where}"


SAME_DATA_KEYS = ("name", "n_train", "n_test", "num_classes", "fallback")


def run(args: argparse.Namespace) -> int:
    from groundup.data import train_val_split

    args, saved = resolve_settings(args)
    validate(args)
    started = time.time()
    conv = args.model in CONV_MODELS
    (x_train, t_train), (x_test, t_test), source = load_data(
        args.dataset, flatten=not conv, data_dir=args.data_dir, strict=args.strict,
        test_fraction=getattr(args, "test_fraction", 0.0),
        test_data=getattr(args, "test_data", None))
    if saved is not None:
        before = {k: saved["data_source"].get(k) for k in SAME_DATA_KEYS}
        now = {k: source.get(k) for k in SAME_DATA_KEYS}
        if before != now:
            raise value_error("train", "data", f"the resumed run's data {before}", f"={now}",
                              "make the same data available (e.g. --data-dir) or start a "
                              "new run.")
    classes = int(max(t_train.max(), t_test.max())) + 1
    if args.val_fraction > 0:
        (x_train, t_train), validation = train_val_split(x_train, t_train, args.val_fraction,
                                                         seed=args.seed)
    else:
        validation = None
    rng = np.random.default_rng(args.seed)
    model = build_model(args, x_train.shape[1:], classes, rng)
    optimizer = build_optimizer(args)
    callbacks = build_callbacks(args, optimizer)
    run_dir = _run_directory(args, saved is not None)
    if getattr(args, "diagnostics", False):
        from groundup.diagnostics import Diagnostics

        callbacks.append(Diagnostics(x_train, t_train, run_dir, seed=args.seed,
                                     every=getattr(args, "diagnostics_every", 1),
                                     every_steps=getattr(args, "diagnostics_every_steps", None)))
    if getattr(args, "tensorboard", None):
        from groundup.tensorboard import TensorBoard

        callbacks.append(TensorBoard(args.tensorboard, run_dir.name))
    config = {
        "command": "train", "argv": list(getattr(args, "argv", None) or sys.argv[1:]),
        **settings_of(args), "resume": None,
        "data_source": source, "n_train": len(x_train),
        "n_val": 0 if validation is None else len(validation[0]), "n_test": len(x_test),
        "model_config": model.get_config(), "optimizer_config": optimizer.get_config(),
        "versions": {"groundup": __version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    if saved is None:
        write_text_atomic(run_dir / "config.json", json.dumps(config, indent=2) + "\n")
    verb = "resuming" if saved is not None else "training"
    print(f"{verb} {args.model} on {source['name']}: {len(x_train)} train / "
          f"{config['n_val']} val / {len(x_test)} test, {args.epochs} epochs -> {run_dir}",
          file=sys.stderr)
    trainer = Trainer(model, optimizer, callbacks=callbacks, rng=rng, verbose=True,
                      fast=args.fast)
    with _files.run_lock("train", run_dir):
        _files.remove_leftovers(run_dir)  # of a write killed in an earlier process
        return _train(args, trainer, run_dir, started, source, x_train, t_train, validation,
                      x_test, t_test, resumed=saved is not None)


def _run_directory(args: argparse.Namespace, resuming: bool) -> Path:
    """The run directory, checked writable before any training (``--out`` or a new name)."""
    run_dir = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{args.model}")
    if run_dir.exists() and not run_dir.is_dir():
        raise value_error("train", "--out", "a directory", str(run_dir),
                          "a file has that name.")
    if not resuming and (run_dir / "config.json").exists() and not args.overwrite:
        raise value_error("train", "--out", "a new or empty directory", str(run_dir),
                          f"it holds a run; continue it with --resume {run_dir}, replace it "
                          "with --overwrite, or choose another --out.")
    if not resuming:
        _files.claim_output("train", run_dir, OUTPUTS, args.overwrite)
    _files.output_dir("train", run_dir / "figures")
    _files.output_dir("train", run_dir)
    return run_dir


def _train(args: argparse.Namespace, trainer: Trainer, run_dir: Path, started: float,
           source: dict[str, Any], x_train: np.ndarray, t_train: np.ndarray,
           validation: Any, x_test: np.ndarray, t_test: np.ndarray, *, resumed: bool) -> int:
    """Fit, then write the model, history and figure; the exit code."""
    model, ckpt_dir = trainer.model, run_dir / "checkpoint"
    if resumed:
        ckpt = trainer.load_checkpoint(ckpt_dir)
        print(f"continuing from {_where(trainer.epoch, trainer.step)} ({ckpt.path})",
              file=sys.stderr)
    try:
        history = trainer.fit(x_train, t_train, epochs=args.epochs,
                              batch_size=args.batch_size, validation=validation,
                              test=(x_test, t_test), checkpoint_dir=ckpt_dir)
    except KeyboardInterrupt:
        write_history(run_dir, trainer.history.to_dict())
        print(f"groundup train: interrupted; {_checkpoint_position(ckpt_dir)}. Resume with: "
              f"groundup train --resume {run_dir}", file=sys.stderr)
        return 130
    io.save(model, run_dir / "model.npz")
    write_history(run_dir, history.to_dict())
    try:
        from groundup.plotting import training_curves

        if len(history):
            training_curves(history.to_dict(), run_dir / "figures" / "curves.png",
                            title=f"{args.model} on {source['name']}")
    except RuntimeError as exc:  # matplotlib not installed: the run itself is complete
        print(f"note: {exc}; figures/curves.png not written", file=sys.stderr)
    if trainer.diverged:
        print(f"groundup train: stopped on a non-finite loss; {_checkpoint_position(ckpt_dir)}.",
              file=sys.stderr)
        return 1
    final = trainer.evaluate(x_test, t_test)
    restored = [cb.restored_epoch for cb in trainer.callbacks
                if isinstance(cb, EarlyStopping) and cb.restored_epoch is not None]
    from groundup.report.evaluation import write_evaluation

    write_evaluation(run_dir, trainer.predict(x_test), x_test, t_test,
                     restored_epoch=restored[0] + 1 if restored else None)
    note = f"; restored the weights of epoch {restored[0] + 1}" if restored else ""
    print(f"test accuracy {final['accuracy']:.4f}, test loss {final['loss']:.4f} "
          f"({time.time() - started:.1f} s){note}; run directory: {run_dir}")
    return 0
