"""``groundup train``: train a model on MNIST, Fashion-MNIST, the bundled sample or a .npz.

Writes a run directory: ``config.json`` (everything needed to rerun), ``history.json`` and
``history.csv``, ``model.npz`` and ``figures/curves.png``.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from groundup import __version__, io, optimizers
from groundup._checks import check_choice, check_number, value_error
from groundup.models import DeepConvNet, MultiLayerNetExtend, Sequential, SimpleConvNet
from groundup.train import EarlyStopping, Trainer

MODELS = ("two-layer", "mlp", "mlp-extend", "convnet", "deep-convnet")
DEFAULT_HIDDEN = {"two-layer": "50", "mlp": "100,100", "mlp-extend": "100,100,100,100,100"}
CONV_MODELS = ("convnet", "deep-convnet")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp", help=f"one of {', '.join(MODELS)} (default mlp)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer sizes, comma separated (default: 50 for two-layer, "
                        "100,100 for mlp, 5x100 for mlp-extend; convnet: its hidden size)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, mnist-sample, fashion-mnist, or a path to a .npz file")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX .gz files")
    p.add_argument("--strict", action="store_true",
                   help="fail instead of falling back to the bundled MNIST sample")
    p.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, adagrad, "
                   "rmsprop, adadelta, adam, nadam, adamw (default adam)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (optimizer default)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="the book's coupled L2, 0.5·λ·ΣW² (decoupled with --optimizer adamw)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout ratio after each hidden "
                   "activation (0 = off)")
    p.add_argument("--batchnorm", action="store_true", help="batch norm before each activation")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="stratified share of the training set held out for validation")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop when val_loss has not improved for PATIENCE epochs and restore "
                        "the best weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default runs/<time>-<model>)")
    p.set_defaults(func=run)


def load_data(dataset: str, *, flatten: bool, data_dir: str | None,
              strict: bool) -> tuple[tuple, tuple, dict[str, Any]]:
    """((x_train, t_train), (x_test, t_test), where the data came from as a dict)."""
    from groundup import data

    if dataset.endswith((".npz", ".csv")):
        loader = data.load_npz if dataset.endswith(".npz") else data.load_csv
        loaded = loader(dataset, normalize=True, flatten=flatten)
    else:
        name = check_choice("train", "--dataset", dataset,
                            ("mnist", "mnist-sample", "fashion-mnist"))
        if name == "mnist-sample":
            loaded = data.load_mnist_sample(normalize=True, flatten=flatten)
        else:
            loader = data.load_mnist if name == "mnist" else data.load_fashion_mnist
            loaded = loader(normalize=True, flatten=flatten, data_dir=data_dir, strict=strict)
    (train, test) = loaded
    if len(test[0]) == 0:
        raise value_error("train", "--dataset", "a data set with a test split (x_test, t_test)",
                          dataset)
    return train, test, loaded.info.to_dict()


def build_model(args: argparse.Namespace, input_shape: tuple[int, ...], classes: int,
                rng: np.random.Generator) -> Sequential:
    model = check_choice("train", "--model", args.model, MODELS)
    hidden_text = args.hidden or DEFAULT_HIDDEN.get(model, "100")
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
        if model == "convnet":
            return SimpleConvNet(input_shape, hidden_size=hidden[0], output_size=classes,
                                 weight_init_std="he_normal", **common)
        return DeepConvNet(input_shape, hidden_size=hidden[0], output_size=classes, **common)
    return MultiLayerNetExtend(int(np.prod(input_shape)), hidden, classes,
                               weight_init_std="he_normal", weight_decay_lambda=coupled,
                               use_dropout=args.dropout > 0, dropout_ration=args.dropout,
                               use_batchnorm=args.batchnorm, **common)


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_history(run_dir: Path, history: dict[str, list[float]]) -> None:
    _write_text(run_dir / "history.json", json.dumps(history, indent=2) + "\n")
    buffer = _io.StringIO()
    writer = csv.writer(buffer)
    keys = list(history)
    writer.writerow(keys)
    for row in zip(*(history[k] for k in keys), strict=True):
        writer.writerow(row)
    _write_text(run_dir / "history.csv", buffer.getvalue())


def validate(args: argparse.Namespace) -> None:
    check_number("train", "--epochs", args.epochs, low=1, integer=True)
    check_number("train", "--batch-size", args.batch_size, low=1, integer=True)
    check_number("train", "--weight-decay", args.weight_decay, low=0)
    check_number("train", "--dropout", args.dropout, low=0, high=1, high_open=True)
    check_number("train", "--val-fraction", args.val_fraction, low=0, high=1, high_open=True)
    if args.lr is not None:
        check_number("train", "--lr", args.lr, low=0, low_open=True)
    if args.early_stopping is not None:
        check_number("train", "--early-stopping", args.early_stopping, low=0, integer=True)
        if args.val_fraction == 0:
            raise value_error("train", "--val-fraction", "> 0 with --early-stopping", 0.0)
    check_choice("train", "--model", args.model, MODELS)


def run(args: argparse.Namespace) -> int:
    from groundup.data import train_val_split

    validate(args)
    started = time.time()
    conv = args.model in CONV_MODELS
    (x_train, t_train), (x_test, t_test), source = load_data(
        args.dataset, flatten=not conv, data_dir=args.data_dir, strict=args.strict)
    classes = int(max(t_train.max(), t_test.max())) + 1
    if args.val_fraction > 0:
        (x_train, t_train), validation = train_val_split(x_train, t_train, args.val_fraction,
                                                         seed=args.seed)
    else:
        validation = None
    rng = np.random.default_rng(args.seed)
    model = build_model(args, x_train.shape[1:], classes, rng)
    opt_kwargs: dict[str, Any] = {} if args.lr is None else {"lr": args.lr}
    if args.optimizer.lower() == "adamw":
        opt_kwargs["weight_decay"] = args.weight_decay
    optimizer = optimizers.get(args.optimizer, **opt_kwargs)
    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping("val_loss", patience=args.early_stopping,
                                       restore_best_weights=True))
    run_dir = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{args.model}")
    if run_dir.exists() and not run_dir.is_dir():
        raise value_error("train", "--out", "a directory", str(run_dir))
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    config = {
        "command": "train", "argv": sys.argv[1:], **{k: v for k, v in vars(args).items()
                                                       if k != "func"},
        "data_source": source, "n_train": len(x_train),
        "n_val": 0 if validation is None else len(validation[0]), "n_test": len(x_test),
        "model_config": model.get_config(), "optimizer_config": optimizer.get_config(),
        "versions": {"groundup": __version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    _write_text(run_dir / "config.json", json.dumps(config, indent=2) + "\n")
    print(f"training {args.model} on {source['name']}: {len(x_train)} train / "
          f"{config['n_val']} val / {len(x_test)} test, {args.epochs} epochs -> {run_dir}",
          file=sys.stderr)
    trainer = Trainer(model, optimizer, callbacks=callbacks, rng=rng, verbose=True)
    history = trainer.fit(x_train, t_train, epochs=args.epochs, batch_size=args.batch_size,
                          validation=validation, test=(x_test, t_test))
    io.save(model, run_dir / "model.npz")
    write_history(run_dir, history.to_dict())
    final = trainer.evaluate(x_test, t_test)
    try:
        from groundup.plotting import training_curves

        if len(history):
            training_curves(history.to_dict(), run_dir / "figures" / "curves.png",
                            title=f"{args.model} on {source['name']}")
    except RuntimeError as exc:  # matplotlib not installed: the run itself is complete
        print(f"note: {exc}; figures/curves.png not written", file=sys.stderr)
    print(f"test accuracy {final['accuracy']:.4f}, test loss {final['loss']:.4f} "
          f"({time.time() - started:.1f} s); run directory: {run_dir}")
    return 0
