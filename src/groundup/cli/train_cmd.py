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
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from groundup import __version__, _files, io, optimizers, regularizers, schedules
from groundup._checks import check_choice, check_number, suggest, type_error, value_error
from groundup.callbacks import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, history_csv
from groundup.io import write_text_atomic
from groundup.models import DeepConvNet, MultiLayerNetExtend, Sequential, SimpleConvNet
from groundup.train import Trainer

MODELS = ("two-layer", "mlp", "mlp-extend", "convnet", "deep-convnet")
DEFAULT_HIDDEN = {"two-layer": "50", "mlp": "100,100", "mlp-extend": "100,100,100,100,100"}
CONV_MODELS = ("convnet", "deep-convnet")
# --config keys that have no flag: tables passed through to the library.
TABLE_KEYS = ("optimizer_args", "schedule", "reduce_lr_on_plateau")
# Settings that may differ when resuming (the rest must match the saved run).
# The command line's learning rates where the library's (torch's) default trains too slowly
# to show anything in a few epochs: SGD's 1e-3 reaches 27 % in 5 epochs; 0.01 is the book's
# and Keras' default.
CLI_LR = {"sgd": 0.01}
MONITORS = ("val_loss", "val_accuracy", "loss", "train_accuracy")
RESUMABLE = ("epochs", "resume", "config", "out", "overwrite")
# What a training run writes: what --overwrite may replace.
OUTPUTS = ("config.json", "history.json", "history.csv", "model.npz", "figures", "checkpoint",
           ".checkpoint-old", "diagnostics.json", "diagnostics.npz", "evaluation.json",
           "evaluation.npz", "report.html")


def _add_arguments(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    def arg(*names: str, default: Any = None, **kw: Any) -> None:
        # without defaults, only the flags given appear (store_true/false have their own)
        kw["default"] = default if defaults else argparse.SUPPRESS
        p.add_argument(*names, **kw)

    arg("--model", default="mlp", help=f"one of {', '.join(MODELS)} (default mlp)")
    arg("--hidden", help="hidden layer sizes, comma separated (default: 50 for two-layer, "
                         "100,100 for mlp, 5x100 for mlp-extend; convnet: its hidden size)")
    arg("--dataset", default="mnist",
        help="mnist, mnist-sample, fashion-mnist, or a path to a .npz/.csv file")
    arg("--data-dir", help="directory holding the IDX .gz files")
    arg("--strict", action="store_true", default=False,
        help="fail instead of falling back to the bundled MNIST sample")
    arg("--optimizer", default="adam", help="sgd, momentum, nesterov, adagrad, rmsprop, "
                                            "adadelta, adam, nadam, adamw (default adam)")
    arg("--lr", type=float, help="learning rate (default: 0.01 for sgd, momentum, nesterov, "
                                 "adagrad, rmsprop; 1.0 adadelta; 1e-3 adam, adamw; 2e-3 "
                                 "nadam)")
    arg("--clipnorm", type=float, help="clip each gradient array to this L2 norm (Keras)")
    arg("--clipvalue", type=float, help="clip each gradient element to ±this value (Keras)")
    arg("--epochs", type=int, default=10)
    arg("--batch-size", type=int, default=100)
    arg("--weight-decay", type=float, default=0.0,
        help="the book's coupled L2, 0.5·λ·ΣW² (decoupled with --optimizer adamw)")
    arg("--l1", type=float, default=0.0,
        help="Keras L1 penalty c·Σ|W| on every weight matrix of a dense model (0 = off)")
    arg("--dropout", type=float, default=0.0,
        help="dropout ratio after each hidden activation (0 = off)")
    arg("--batchnorm", action="store_true", default=False,
        help="batch norm before each activation")
    arg("--test-fraction", type=float, default=0.0,
        help="for a data file without a test split: the stratified share held out for test "
             "(the same for every --seed)")
    arg("--test-data", metavar="FILE",
        help="for a data file without a test split: a .npz/.csv file whose examples are the "
             "test set")
    arg("--val-fraction", type=float, default=0.1,
        help="stratified share of the training set held out for validation")
    arg("--early-stopping", type=int, metavar="PATIENCE",
        help="stop when the monitored metric has not improved for PATIENCE epochs (Keras' "
             "rule) and restore the weights of the best epoch")
    arg("--monitor", default="val_loss", metavar="METRIC",
        help="what --early-stopping watches: val_loss (default), val_accuracy, loss or "
             "train_accuracy")
    arg("--no-fast", dest="fast", action="store_false", default=True,
        help="train on the reference layers and optimizers instead of the fast engine "
             "(same formulas, slower; see docs/speed.md)")
    arg("--diagnostics", action="store_true", default=False,
        help="record per-layer activations, gradients and update ratios on a fixed probe "
             "batch into diagnostics.json/.npz (see docs/diagnostics.md)")
    arg("--diagnostics-every", type=int, default=1, metavar="N",
        help="with --diagnostics: a diagnostics point every N epochs (default 1)")
    arg("--tensorboard", metavar="DIR",
        help="also write TensorBoard event files to DIR/<run>/{train,validation} (needs "
             "tensorboardX: pip install 'groundup[tensorboard]')")
    arg("--seed", type=int, default=0)
    arg("--config", metavar="TOML", help="read settings from a TOML file (keys as the flags, "
                                         "e.g. batch_size = 50); flags given override it")
    arg("--out", help="run directory (default runs/<time>-<model>)")
    arg("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    arg("--overwrite", action="store_true", default=False,
        help="replace an earlier run in --out (only groundup's own files are removed)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description=__doc__.splitlines()[0])
    _add_arguments(p)
    p.set_defaults(func=run)


def explicit_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (not defaults), as ``{dest: value}``."""
    from groundup.cli import _Parser

    argv = list(getattr(args, "argv", None) or [])
    if "train" in argv:
        argv = argv[argv.index("train") + 1:]
    parser = _Parser(prog="groundup train", argument_default=argparse.SUPPRESS)
    _add_arguments(parser, defaults=False)
    return vars(parser.parse_known_args(argv)[0])


def read_config_file(path: str, known: set[str]) -> dict[str, Any]:
    """Settings from a TOML file; keys are flag names with ``_`` or ``-``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"train: --config file not found: {file}")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise value_error("train", "--config", "a valid TOML file", str(file), str(exc)) from exc
    settings = {}
    allowed = (known - {"config", "resume", "func", "command", "argv"}) | set(TABLE_KEYS)
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in allowed:
            raise value_error("train", "--config key", "a known setting", key,
                              suggest(name, sorted(allowed)))
        if name == "hidden" and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if name in TABLE_KEYS and not isinstance(value, dict):
            raise type_error("train", f"--config {key}", "a table", value,
                             f'e.g. [{key}] then name = "..." lines')
        settings[name] = value
    return settings


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


def validate(args: argparse.Namespace) -> None:
    check_number("train", "--epochs", args.epochs, low=1, integer=True)
    check_number("train", "--batch-size", args.batch_size, low=1, integer=True)
    check_number("train", "--weight-decay", args.weight_decay, low=0)
    check_number("train", "--l1", getattr(args, "l1", 0.0), low=0)
    check_number("train", "--dropout", args.dropout, low=0, high=1, high_open=True)
    check_number("train", "--val-fraction", args.val_fraction, low=0, high=1, high_open=True)
    check_number("train", "--test-fraction", getattr(args, "test_fraction", 0.0), low=0, high=1,
                 high_open=True)
    check_number("train", "--seed", args.seed, integer=True)
    check_number("train", "--diagnostics-every", getattr(args, "diagnostics_every", 1), low=1,
                 integer=True)
    if args.lr is not None:
        check_number("train", "--lr", args.lr, low=0, low_open=True)
    if args.early_stopping is not None:
        check_number("train", "--early-stopping", args.early_stopping, low=0, integer=True)
        monitor = getattr(args, "monitor", None) or "val_loss"
        check_choice("train", "--monitor", monitor, MONITORS)
        if args.val_fraction == 0 and monitor.startswith("val_"):
            raise value_error("train", "--val-fraction", f"> 0 with --early-stopping on "
                              f"{monitor}", 0.0, "or use --monitor loss.")
    if (getattr(args, "reduce_lr_on_plateau", None) and args.val_fraction == 0
            and args.reduce_lr_on_plateau.get("monitor", "val_loss").startswith("val_")):
        raise value_error("train", "--val-fraction", "> 0 with reduce_lr_on_plateau", 0.0)
    check_choice("train", "--model", args.model, MODELS)


SETTINGS_EXCLUDED = ("func", "argv", "command")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in SETTINGS_EXCLUDED}


def _absolute_paths(settings: dict[str, Any]) -> dict[str, Any]:
    """Data file paths made absolute, so ``evaluate`` and ``--resume`` work from anywhere."""
    out = dict(settings)
    for key in ("dataset", "test_data", "data_dir", "tensorboard"):
        value = out.get(key)
        if isinstance(value, str) and (key != "dataset" or value.endswith((".npz", ".csv"))):
            out[key] = str(Path(value).expanduser().resolve())
    return out


def resolve_settings(args: argparse.Namespace) -> tuple[argparse.Namespace, dict | None]:
    """Merge defaults < --config file < flags; with --resume, the saved run's settings."""
    explicit = _absolute_paths(explicit_flags(args))
    known = set(vars(args))
    if args.resume:
        run_dir = Path(args.resume)
        saved = {"fast": True, **read_run_config(run_dir)}  # runs from before --no-fast
        wanted = dict(explicit)
        if args.config:
            wanted = _absolute_paths({**read_config_file(args.config, known), **explicit})
        for key, value in wanted.items():
            if key in RESUMABLE:
                continue
            if key not in saved or saved[key] != value:
                if key == "fast":  # only --no-fast can be given: the run used the engine
                    raise ValueError(f"train: --no-fast must be left out as in the run being "
                                     f"resumed ({run_dir}, trained on the fast engine); got "
                                     "--no-fast. Drop it to continue the run, or start a new "
                                     "run with --out.")
                flag = "--" + key.replace("_", "-")
                before = saved.get(key)
                shown = "left unset (its default)" if before is None else repr(before)
                raise value_error("train", flag, f"{shown} as in the run being resumed "
                                  f"({run_dir})", value, "drop the flag to continue it, or "
                                  "start a new run with --out.")
        merged = {**{k: v for k, v in saved.items() if k in known or k in TABLE_KEYS},
                  "resume": str(run_dir), "out": str(run_dir), "config": args.config}
        if "epochs" in wanted:
            merged["epochs"] = wanted["epochs"]
        merged["argv"] = getattr(args, "argv", None)
        return argparse.Namespace(**merged), saved
    merged = vars(args).copy()
    if args.config:
        merged.update(read_config_file(args.config, known))
        merged.update(explicit)
    return argparse.Namespace(**_absolute_paths(merged)), None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory, with one-line errors."""
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}; give the --out directory of a "
                                "`groundup train` run")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: config.json is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise value_error("train", "config.json", "valid JSON", str(path)) from exc
    if not isinstance(config, dict) or config.get("command") != "train":
        raise value_error("train", "config.json", "written by `groundup train`", str(path))
    return config


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
                                     every=getattr(args, "diagnostics_every", 1)))
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
