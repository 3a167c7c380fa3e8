"""The settings of a ``groundup train`` run: its flags, a TOML ``--config`` file, and with
``--resume`` the saved run's ``config.json``; checked in one place (:func:`validate`)."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from groundup._checks import check_choice, check_number, suggest, type_error, value_error

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


def add_arguments(p: argparse.ArgumentParser, defaults: bool = True) -> None:
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
    arg("--diagnostics-every-steps", type=int, default=None, metavar="N",
        help="with --diagnostics: a point every N updates instead (counted over the run)")
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


def explicit_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (not defaults), as ``{dest: value}``."""
    from groundup.cli import _Parser

    argv = list(getattr(args, "argv", None) or [])
    if "train" in argv:
        argv = argv[argv.index("train") + 1:]
    parser = _Parser(prog="groundup train", argument_default=argparse.SUPPRESS)
    add_arguments(parser, defaults=False)
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
    if getattr(args, "diagnostics_every_steps", None) is not None:
        check_number("train", "--diagnostics-every-steps", args.diagnostics_every_steps, low=1,
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
