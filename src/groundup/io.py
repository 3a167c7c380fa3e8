"""Saving and loading models as one self-contained ``.npz`` file (no pickle).

A model file holds every parameter (``param/W1`` ...), the batch-norm running statistics
(``state/running_mean1`` ...) and one JSON string entry, ``__meta__``, with the format
name and version and the architecture, so ``load(path)`` rebuilds the model from the
file alone. Files are read with ``allow_pickle=False``: an object array inside a file is
rejected, never unpickled. Writes are atomic: the data goes to a temporary file in the
same directory which replaces the target only once it is complete.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from groundup import __version__, _files
from groundup._checks import value_error

MODEL_FORMAT = "groundup.model"
FORMAT_VERSION = 1
META_KEY = "__meta__"


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                     meta: dict[str, Any]) -> Path:
    """Write ``arrays`` plus a JSON ``meta`` entry to exactly ``path``, atomically."""
    entries = {**arrays, META_KEY: np.array(json.dumps(meta))}
    return _files.atomic_write(path, lambda fh: np.savez(fh, **entries), owner="save")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    return _files.atomic_write(path, lambda fh: fh.write(text), binary=False)


# A deflated member may expand ~1000x; images, weights and optimizer state expand far less.
MAX_EXPANSION = 200
_SMALL_FILE = 16 << 20  # below this many claimed bytes no ratio is checked


def npz_headers(path: str | os.PathLike, owner: str = "load") -> dict[str, tuple]:
    """``{name: (shape, dtype)}`` of the arrays in an ``.npz``, read from their headers only.

    Before any array is allocated, each member's claimed shape × item size must match the
    bytes the member holds, and all members together may not expand more than
    ``MAX_EXPANSION`` times the file: a file that claims more is refused in one line (a
    "zip bomb" or a corrupt header), instead of ``np.load`` allocating what it claims.
    Object arrays (pickled Python objects) are reported with their dtype and never read;
    every caller refuses them.
    """
    path = Path(path)
    headers: dict[str, tuple] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename.removesuffix(".npy")
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    start = fh.tell()
                if dtype.hasobject:  # pickled objects: no size to check; never loaded
                    headers[name] = (tuple(int(d) for d in shape), dtype)
                    continue
                claimed = start + math.prod(int(d) for d in shape) * dtype.itemsize
                if claimed != info.file_size:
                    raise value_error(owner, f"array {name!r}", "as large as its header "
                                      "claims", f"={shape} {dtype} ({claimed:,} bytes) in "
                                      f"{info.file_size:,} bytes", f"file: {path}; it is "
                                      "corrupt.")
                total += claimed
                headers[name] = (tuple(int(d) for d in shape), dtype)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise value_error(owner, "file", "a complete .npz file", str(path),
                          "it is truncated or corrupt.") from exc
    except ValueError as exc:
        if str(exc).startswith(f"{owner}:"):
            raise
        raise value_error(owner, "file", "a readable .npz file", str(path), str(exc)) from exc
    size = path.stat().st_size
    if total > _SMALL_FILE and total > MAX_EXPANSION * size:
        raise value_error(owner, "file", f"at most {MAX_EXPANSION}x its size once unpacked",
                          f"={size:,} bytes claiming {total:,}", f"file: {path}; it is "
                          "corrupt or a decompression bomb.")
    return headers


def read_npz(path: str | os.PathLike, expected_format: str,
             max_version: int = FORMAT_VERSION) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by ``atomic_write_npz``; returns ``(arrays, meta)``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (one line naming the
    file) for a truncated or corrupt file, one holding pickled objects, a different format
    or a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such file: {path}")
    if any(dtype.hasobject for _, dtype in npz_headers(path).values()):
        raise value_error("load", "file", "free of pickled objects", str(path),
                          "the file holds Python objects and was not loaded.")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise value_error("load", "file", "free of pickled objects", str(path),
                              "the file holds Python objects and was not loaded.") from exc
        raise value_error("load", "file", "a readable .npz file", str(path), str(exc)) from exc
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise value_error("load", "file", "a complete .npz file", str(path),
                          "it is truncated or corrupt.") from exc
    if META_KEY not in arrays:
        raise value_error("load", "file", f"a {expected_format} file with a {META_KEY} entry",
                          str(path))
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as exc:
        raise value_error("load", META_KEY, "valid JSON", str(path)) from exc
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise value_error("load", "format", repr(expected_format), found, f"file: {path}")
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= max_version:
        raise value_error("load", "format_version", f"an int in [1, {max_version}]", version,
                          f"file: {path}; a newer groundup may read it.")
    return arrays, meta


def model_arrays(model: Any) -> dict[str, np.ndarray]:
    """The arrays that make up a model: ``param/<name>`` and ``state/<name>``."""
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"state/{k}": v for k, v in model.state.items()})
    return arrays


def set_model_arrays(model: Any, arrays: dict[str, np.ndarray], source: str) -> None:
    """Copy saved arrays into the model's own arrays, in place (layers keep references)."""
    targets = {f"param/{k}": v for k, v in model.params.items()}
    targets.update({f"state/{k}": v for k, v in model.state.items()})
    missing = sorted(set(targets) - set(arrays))
    extra = sorted(k for k in set(arrays) - set(targets) if k.startswith(("param/", "state/")))
    if missing or extra:
        raise value_error("load", "arrays", "exactly the model's parameters",
                          f"=missing {missing}, unexpected {extra}", f"file: {source}")
    for key, target in targets.items():
        if arrays[key].shape != target.shape:
            raise value_error("load", key, f"of shape {target.shape}", f"={arrays[key].shape}",
                              f"file: {source}")
        target[...] = arrays[key]


def save(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (architecture, parameters, batch-norm statistics) to ``path``."""
    meta = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
            "groundup_version": __version__, "model": model.get_config()}
    return atomic_write_npz(path, model_arrays(model), meta)


def load(path: str | os.PathLike) -> Any:
    """Rebuild the model saved at ``path``; predictions equal the saved model's bit for bit."""
    from groundup.models import from_config

    arrays, meta = read_npz(path, MODEL_FORMAT)
    try:
        model = from_config(meta["model"], rng=0)
    except (KeyError, TypeError) as exc:
        raise value_error("load", "model config", "a valid architecture", str(path),
                          str(exc)) from exc
    set_model_arrays(model, arrays, str(path))
    return model
