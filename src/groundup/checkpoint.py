"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a directory::

    checkpoint/
        model.npz      parameters + batch-norm statistics (groundup.io format)
        optimizer.npz  the optimizer's state_dict (slots, step count, lr)
        callbacks.npz  arrays kept by callbacks (e.g. EarlyStopping's best weights)
        state.json     epoch, step within the epoch, RNG states, history, callback state

It is replaced as a whole: the new files are written into a fresh sibling directory,
which then takes the place of the old one by two renames. A crash between the renames
leaves the previous checkpoint as ``.checkpoint-old``, which :func:`find` falls back to, so
a checkpoint on disk is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup import _files, io
from groundup._checks import value_error

STATE_FORMAT = "groundup.checkpoint"
OPTIMIZER_FORMAT = "groundup.optimizer"
CALLBACKS_FORMAT = "groundup.callbacks"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: model arrays, optimizer state, callback arrays and state.json."""

    path: Path
    model: dict[str, np.ndarray]
    model_meta: dict[str, Any]
    optimizer: dict[str, np.ndarray]
    optimizer_meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    state: dict[str, Any]


def _old(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}-old")


def find(directory: str | os.PathLike) -> Path | None:
    """The complete checkpoint at ``directory`` (or its ``-old`` twin), else ``None``."""
    directory = Path(directory)
    for candidate in (directory, _old(directory)):
        if (candidate / "state.json").is_file():
            return candidate
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(directory: str | os.PathLike, *, model: Any, optimizer: Any,
         arrays: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Write a checkpoint to ``directory``, replacing any previous one as a whole."""
    directory = Path(directory)
    parent = directory.parent
    if parent.exists() and not parent.is_dir():
        raise value_error("checkpoint", "directory", "inside a directory", str(directory),
                          "a file stands where a parent directory should be.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _files.cannot_write("checkpoint", parent, exc) from exc
    tmp = _files.temporary_dir(parent, f"{directory.name}-new", owner="checkpoint")
    try:
        io.save(model, tmp / "model.npz")
        meta = {"format": OPTIMIZER_FORMAT, "format_version": FORMAT_VERSION,
                "class": type(optimizer).__name__,
                "config": optimizer.get_config() if hasattr(optimizer, "get_config") else {}}
        io.atomic_write_npz(tmp / "optimizer.npz", optimizer.state_dict(), meta)
        io.atomic_write_npz(tmp / "callbacks.npz", arrays,
                            {"format": CALLBACKS_FORMAT, "format_version": FORMAT_VERSION})
        text = json.dumps({"format": STATE_FORMAT, "format_version": FORMAT_VERSION, **state},
                          indent=1)
        io.write_text_atomic(tmp / "state.json", text)
        _fsync_dir(tmp)
        old = _old(directory)
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _files.cannot_write("checkpoint", directory, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def position(directory: str | os.PathLike) -> tuple[Path, int, int] | None:
    """(path, epoch, step) of the checkpoint at ``directory``, or ``None`` if there is none.

    ``epoch`` epochs are complete and ``step`` updates of the next one are done.
    """
    found = find(directory)
    if found is None:
        return None
    state = _read_state(found / "state.json")
    return found, int(state["epoch"]), int(state["step"])


def _read_state(state_path: Path) -> dict[str, Any]:
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise value_error("checkpoint", "state.json", "valid JSON", str(state_path)) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise value_error("checkpoint", "state.json", f"a {STATE_FORMAT} file", str(state_path))
    if state.get("format_version") != FORMAT_VERSION:
        raise value_error("checkpoint", "format_version", str(FORMAT_VERSION),
                          state.get("format_version"), f"file: {state_path}")
    return state


def pack_callbacks(callbacks: list[Any]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """The callbacks' ``state_dict``s as ``callbacks.npz`` arrays (``"<i>/<key>"``) and the
    rest of each, by class, for ``state.json``."""
    arrays: dict[str, np.ndarray] = {}
    states = []
    for i, cb in enumerate(callbacks):
        plain = {}
        for key, value in cb.state_dict().items():
            if isinstance(value, np.ndarray):
                arrays[f"{i}/{key}"] = value
            else:
                plain[key] = value
        states.append({"class": type(cb).__name__, "state": plain})
    return arrays, states


def unpack_callbacks(ckpt: Checkpoint, callbacks: list[Any]) -> None:
    """Give each callback back what :func:`pack_callbacks` saved of it."""
    for i, (cb, saved) in enumerate(zip(callbacks, ckpt.state["callbacks"], strict=True)):
        state = dict(saved["state"])
        prefix = f"{i}/"
        state.update({k[len(prefix):]: v for k, v in ckpt.arrays.items()
                      if k.startswith(prefix)})
        if state:
            cb.load_state_dict(state)


def load(directory: str | os.PathLike) -> Checkpoint:
    """Read the checkpoint at ``directory``; one-line errors for missing or broken files."""
    found = find(directory)
    if found is None:
        raise FileNotFoundError(f"checkpoint: no checkpoint in {directory} (state.json missing); "
                                "was the run started with a checkpoint directory?")
    state = _read_state(found / "state.json")
    model, model_meta = io.read_npz(found / "model.npz", io.MODEL_FORMAT)
    optimizer, optimizer_meta = io.read_npz(found / "optimizer.npz", OPTIMIZER_FORMAT)
    arrays, _ = io.read_npz(found / "callbacks.npz", CALLBACKS_FORMAT)
    return Checkpoint(found, model, model_meta, optimizer, optimizer_meta, arrays, state)
