"""``groundup summary RUN_DIR|MODEL.npz``: layers, output shapes and parameter counts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from groundup import io


def add_parser(sub: Any) -> None:
    p = sub.add_parser("summary", help="print a model's layers, shapes and parameter counts",
                       description=__doc__.splitlines()[0])
    p.add_argument("path", metavar="RUN_DIR|MODEL.npz",
                   help="a run directory (its model.npz, else checkpoint/model.npz) or a "
                        "model file")
    p.set_defaults(func=run)


def model_file(path: Path) -> Path:
    """The model file of a run directory, or ``path`` itself."""
    if path.is_dir():
        for candidate in (path / "model.npz", path / "checkpoint" / "model.npz"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no model.npz in {path} or {path / 'checkpoint'}; give a "
                                "run directory written by groundup train or a model file")
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or model file {path}")
    return path


def run(args: argparse.Namespace) -> int:
    from groundup.summary import summary

    print(summary(io.load(model_file(Path(args.path)))))
    return 0
