"""``groundup evaluate RUN_DIR``: loss, accuracy and per-class accuracy of a saved run.

The model is ``RUN_DIR/model.npz`` (or ``--model-file``); the data set is the run's own
(the same validation split, from ``config.json``) unless ``--dataset`` names another.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from groundup import io
from groundup._checks import check_choice, value_error

SPLITS = ("test", "val", "train")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test (or val) data",
                       description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by groundup train")
    p.add_argument("--split", default="test", help="test, val or train (default test)")
    p.add_argument("--dataset", default=None,
                   help="evaluate on another data set (name or .npz/.csv path)")
    p.add_argument("--model-file", default=None,
                   help="a model .npz other than RUN_DIR/model.npz (e.g. RUN_DIR/checkpoint/"
                        "model.npz)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def load_run(run_dir: str) -> tuple[dict[str, Any], Path]:
    """``(config, run_dir)`` of a ``groundup train`` run directory."""
    from groundup.cli.train_settings import read_run_config

    path = Path(run_dir)
    return read_run_config(path), path


def load_model(run_path: Path, model_file: str | None) -> Any:
    path = Path(model_file) if model_file else run_path / "model.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}; the run may not have finished: try "
                                f"--model-file {run_path / 'checkpoint' / 'model.npz'}")
    return io.load(path)


def run_data(config: dict[str, Any], split: str, dataset: str | None,
             conv: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The run's split (re-creating its validation split) or another data set's."""
    from groundup.cli.train_cmd import load_data
    from groundup.data import train_val_split

    name = dataset or config["dataset"]
    own = dataset is None  # the run's own data: the same test split, if it made one
    (x_train, t_train), (x_test, t_test), source = load_data(
        name, flatten=not conv, data_dir=config.get("data_dir"), strict=False,
        test_fraction=config.get("test_fraction", 0.0) if own else 0.0,
        test_data=config.get("test_data") if own else None)
    if split == "test":
        return x_test, t_test, source["name"]
    fraction = config.get("val_fraction", 0.0) if dataset is None else 0.0
    if split == "val":
        if not fraction:
            raise value_error("evaluate", "--split", "test or train (the run had no "
                              "validation split)", split)
        _, (x_val, t_val) = train_val_split(x_train, t_train, fraction, seed=config["seed"])
        return x_val, t_val, source["name"]
    if fraction:
        (x_train, t_train), _ = train_val_split(x_train, t_train, fraction, seed=config["seed"])
    return x_train, t_train, source["name"]


def metrics(model: Any, x: np.ndarray, t: np.ndarray, batch_size: int) -> dict[str, Any]:
    from groundup.train import Trainer

    trainer = Trainer(model, optimizer=None, rng=0)
    result: dict[str, Any] = trainer.evaluate(x, t, batch_size=batch_size)
    predicted = trainer.predict(x, batch_size=batch_size).argmax(axis=1)
    labels = t.argmax(axis=1) if t.ndim == 2 else t
    classes = int(np.prod(model.output_shape))
    per_class = {}
    for c in range(classes):
        mask = labels == c
        if mask.any():
            per_class[str(c)] = float(np.mean(predicted[mask] == c))
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    result.update(n=len(x), per_class_accuracy=per_class, confusion=confusion.tolist())
    return result


def run(args: argparse.Namespace) -> int:
    split = check_choice("evaluate", "--split", args.split, SPLITS)
    if args.batch_size < 1:
        raise value_error("evaluate", "--batch-size", ">= 1", args.batch_size)
    config, run_path = load_run(args.run_dir)
    model = load_model(run_path, args.model_file)
    conv = len(model.input_shape) == 3
    x, t, name = run_data(config, split, args.dataset, conv)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise value_error("evaluate", "data", f"inputs of shape {tuple(model.input_shape)}",
                          f"={tuple(x.shape[1:])}", "the model was trained on other data.")
    result = metrics(model, x, t, args.batch_size)
    result.update(run_dir=str(run_path), split=split, dataset=name)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{name} {split}: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"({result['n']} examples)")
    print("per-class accuracy: " + " ".join(f"{c}:{a:.3f}"
                                            for c, a in result["per_class_accuracy"].items()))
    print("confusion matrix (rows: true class, columns: predicted class):")
    for c, row in enumerate(result["confusion"]):
        print(f"{c:>3} " + " ".join(f"{v:5d}" for v in row))
    return 0
