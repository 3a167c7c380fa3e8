"""A user's own data: ``.npz`` and ``.csv`` files, and ``load_dataset`` which picks a loader
from a name or a path (what the CLI's ``--dataset`` takes).

``.npz`` layout (the book's names): ``x_train`` and ``t_train`` required, ``x_test`` and
``t_test`` optional (both or neither). Images are (N, D), (N, H, W) or (N, C, H, W), any
real dtype; labels are integer class indices (N,) or one-hot (N, K). Read with
``allow_pickle=False``: a file holding Python objects is rejected, never unpickled.

``.csv`` layout: one example per row, comma-separated; the first column is the integer
class label, the remaining columns are the pixel values in C order (``H*W`` of them, or
``C*H*W``). An optional first header row (any non-numeric first field) is skipped.
Example: ``7,0,0,...,255,...``.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from groundup._checks import check_choice, value_error
from groundup.data.loaders import (
    DatasetInfo,
    LoadedDataset,
    dataset_names,
    load_fashion_mnist,
    load_mnist,
    load_mnist_sample,
)
from groundup.data.registry import SAMPLE_NAME
from groundup.data.transforms import format_images, format_labels
from groundup.io import npz_headers


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    # a non-zip file would reach numpy's pickle branch; say what it really is instead
    if not zipfile.is_zipfile(path):
        raise value_error("load_npz", "path", "a readable .npz file", str(path),
                          "the file is not a zip archive (numpy.savez writes one).")
    headers = npz_headers(path, owner="load_npz")  # sizes checked before anything is read
    if any(dtype.hasobject for _, dtype in headers.values()):
        raise value_error("load_npz", f"the arrays of {path}", "numeric arrays (no Python "
                          "objects)", "=an object array", "groundup never unpickles data; "
                          "save plain numeric arrays with numpy.savez.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise value_error("load_npz", f"the arrays of {path}", "numeric arrays (no Python "
                              "objects)", "=an object array", "groundup never unpickles data; "
                              "save plain numeric arrays with numpy.savez.") from exc
        raise value_error("load_npz", "path", "a readable .npz file", str(path),
                          f"({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise value_error("load_npz", "path", "a readable .npz file", str(path),
                          f"the file is corrupt or not an .npz ({exc}).") from exc


def _check_images(owner: str, key: str, x: np.ndarray) -> None:
    if x.dtype.kind not in "fiub":
        raise value_error(owner, key, "a real-valued array", f"=dtype {x.dtype}",
                          "groundup never unpickles data; save numeric arrays.")
    if x.ndim not in (2, 3, 4):
        raise value_error(owner, f"{key}.ndim", "2 (N, D), 3 (N, H, W) or 4 (N, C, H, W)",
                          f"={x.ndim} (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise value_error(owner, key, "finite (no NaN or Inf)", f"={bad} non-finite values")


def _labels(owner: str, key: str, t: np.ndarray, n: int) -> np.ndarray:
    if t.dtype.kind not in "fiub":
        raise value_error(owner, key, "a real-valued array", f"=dtype {t.dtype}")
    if t.ndim == 2:
        t = t.argmax(axis=1)
    elif t.ndim != 1:
        raise value_error(owner, f"{key}.ndim", "1 (class indices) or 2 (one-hot)",
                          f"={t.ndim} (shape {t.shape})")
    if t.dtype.kind == "f" and not (np.isfinite(t).all() and np.array_equal(t, np.round(t))):
        raise value_error(owner, key, "integer class labels", "=non-integer or NaN values")
    if t.shape[0] != n:
        x_key = key.replace("t_", "x_")
        raise value_error(owner, f"len({key})", f"equal to len({x_key}) = {n}",
                          f"={t.shape[0]}")
    return t.astype(np.int64)


def _check_range(owner: str, key: str, t: np.ndarray, num_classes: int) -> None:
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise value_error(owner, key, f"class labels in [0, {num_classes - 1}]",
                          f"=values in [{t.min()}, {t.max()}]",
                          "pass num_classes= or fix the labels.")


def _shape_images(owner: str, x: np.ndarray, flatten: bool,
                  image_shape: tuple[int, ...] | None) -> np.ndarray:
    if flatten or x.ndim != 2:
        return x
    if image_shape is None:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise value_error(owner, "image_shape", "given when flatten=False and D is not a "
                              "perfect square", f"=None (D={x.shape[1]})",
                              "pass image_shape=(C, H, W).")
        image_shape = (1, side, side)
    if math.prod(image_shape) != x.shape[1]:
        raise value_error(owner, "image_shape", f"a shape with {x.shape[1]} elements",
                          image_shape)
    return x.reshape(x.shape[0], *image_shape)


def _finish(owner: str, name: str, location: str, x_train: np.ndarray, t_train: np.ndarray,
            x_test: np.ndarray | None, t_test: np.ndarray | None, normalize: bool,
            flatten: bool, one_hot_label: bool, num_classes: int | None,
            image_shape: tuple[int, ...] | None) -> LoadedDataset:
    if num_classes is None:
        num_classes = int(t_train.max()) + 1 if t_train.size else 1
    _check_range(owner, "t_train", t_train, num_classes)
    if x_test is None or t_test is None:
        x_test = np.zeros((0, *x_train.shape[1:]), dtype=x_train.dtype)
        t_test = np.zeros(0, dtype=np.int64)
    _check_range(owner, "t_test", t_test, num_classes)
    if x_test.shape[1:] != x_train.shape[1:]:
        raise value_error(owner, "x_test.shape[1:]", f"equal to x_train.shape[1:] = "
                          f"{x_train.shape[1:]}", f"={x_test.shape[1:]}")
    splits = []
    for x, t in ((x_train, t_train), (x_test, t_test)):
        x = _shape_images(owner, x, flatten, image_shape)
        splits.append((format_images(x, normalize=normalize, flatten=flatten),
                       format_labels(t, one_hot_label=one_hot_label, num_classes=num_classes)))
    info = DatasetInfo(name, "file", location, len(t_train), len(t_test), num_classes)
    return LoadedDataset(splits[0], splits[1], info)


def load_npz(path: str | os.PathLike, normalize: bool = True, flatten: bool = True,
             one_hot_label: bool = False, *, num_classes: int | None = None,
             image_shape: tuple[int, ...] | None = None) -> LoadedDataset:
    """Load a user's ``.npz`` (keys ``x_train``, ``t_train``, optionally ``x_test``, ``t_test``).

    Args:
        path: the file.
        normalize: uint8 images become float32 ``x / 255``; other images float32 as stored.
            False keeps the stored dtype.
        flatten: (N, D) (True) or (N, C, H, W) (False; (N, D) input needs a square D or
            ``image_shape``).
        one_hot_label: float32 one-hot (N, K) instead of class indices.
        num_classes: K; by default ``max(t_train) + 1``.
        image_shape: (C, H, W) used to unflatten (N, D) images.

    Returns:
        ``((x_train, t_train), (x_test, t_test))`` with ``.info``; a file without a test
        split gives empty test arrays.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing keys, object arrays, NaN/Inf images, labels outside
            [0, num_classes), mismatched lengths, wrong ranks.
    """
    owner = "load_npz"
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: path must be an existing .npz file; "
                                f"got path={str(path)!r}.")
    arrays = _read_npz(path)
    for key in ("x_train", "t_train"):
        if key not in arrays:
            raise value_error(owner, f"the keys of {path.name}", "x_train, t_train (and "
                              "optionally x_test, t_test)", f"={sorted(arrays)}",
                              f"{key!r} is missing; save with numpy.savez(path, x_train=..., "
                              "t_train=..., x_test=..., t_test=...).")
    if ("x_test" in arrays) != ("t_test" in arrays):
        raise value_error(owner, f"the keys of {path.name}", "both x_test and t_test or neither",
                          f"={sorted(arrays)}")
    x_train = arrays["x_train"]
    _check_images(owner, "x_train", x_train)
    t_train = _labels(owner, "t_train", arrays["t_train"], x_train.shape[0])
    x_test = t_test = None
    if "x_test" in arrays:
        x_test = arrays["x_test"]
        _check_images(owner, "x_test", x_test)
        t_test = _labels(owner, "t_test", arrays["t_test"], x_test.shape[0])
    return _finish(owner, str(path), str(path), x_train, t_train, x_test, t_test, normalize,
                   flatten, one_hot_label, num_classes, image_shape)


def _read_csv(owner: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: path must be an existing .csv file; "
                                f"got path={str(path)!r}.")
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    field = first.split(",", 1)[0].strip()
    try:
        float(field)
        skip = 0
    except ValueError:
        skip = 1
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise value_error(owner, f"the rows of {path.name}", "label,pixel,pixel,... numbers with "
                          "the same count on every row", "=unreadable", f"({exc})") from exc
    if table.shape[1] < 2 or table.shape[0] == 0:
        raise value_error(owner, f"the table of {path.name}", "at least one row of a label and "
                          "one pixel", f"=shape {table.shape}")
    t = table[:, 0]
    x = table[:, 1:]
    if not np.isfinite(x).all():
        raise value_error(owner, f"the pixels of {path.name}", "finite (no NaN or Inf)",
                          f"={int(np.count_nonzero(~np.isfinite(x)))} non-finite values")
    if np.array_equal(x, np.round(x)) and x.size and x.min() >= 0 and x.max() <= 255:
        x = x.astype(np.uint8)
    else:
        x = x.astype(np.float32)
    return x, _labels(owner, "labels", t, x.shape[0])


def load_csv(path: str | os.PathLike, normalize: bool = True, flatten: bool = True,
             one_hot_label: bool = False, *, test_path: str | os.PathLike | None = None,
             num_classes: int | None = None,
             image_shape: tuple[int, ...] | None = None) -> LoadedDataset:
    """Load a user's ``.csv``: one example per row, ``label,pixel_1,...,pixel_D``.

    Integer pixels all in 0..255 are read as uint8 (so ``normalize`` divides by 255);
    anything else is float32 and kept as is. An optional header row is skipped.

    Args:
        path: the training rows.
        test_path: optional file of test rows in the same format.
        normalize, flatten, one_hot_label, num_classes, image_shape: as for ``load_npz``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ragged or non-numeric rows, NaN, non-integer or out-of-range labels.
    """
    owner = "load_csv"
    path = Path(path).expanduser()
    x_train, t_train = _read_csv(owner, path)
    x_test = t_test = None
    location = str(path)
    if test_path is not None:
        x_test, t_test = _read_csv(owner, Path(test_path).expanduser())
        if x_test.dtype != x_train.dtype:
            x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        location += os.pathsep + str(test_path)
    return _finish(owner, str(path), location, x_train, t_train, x_test, t_test, normalize,
                   flatten, one_hot_label, num_classes, image_shape)


def load_dataset(name: str | os.PathLike, normalize: bool = True, flatten: bool = True,
                 one_hot_label: bool = False, *, data_dir: str | os.PathLike | None = None,
                 download: bool = True, strict: bool = False, **kwargs: Any) -> LoadedDataset:
    """Load a data set by name (``"mnist"``, ``"fashion-mnist"``, ``"mnist-sample"``) or a
    path ending in ``.npz`` or ``.csv`` — what ``--dataset`` accepts on the command line.

    ``strict`` only matters for ``"mnist"`` (the one with a bundled fallback); ``kwargs`` go
    to the chosen loader (``mirrors``, ``timeout``, ``progress``; ``num_classes``, ...).
    """
    text = os.fspath(name)
    suffix = Path(text).suffix.lower()
    if suffix == ".npz":
        return load_npz(text, normalize, flatten, one_hot_label, **kwargs)
    if suffix == ".csv":
        return load_csv(text, normalize, flatten, one_hot_label, **kwargs)
    check_choice("load_dataset", "name", text, dataset_names())
    if text == SAMPLE_NAME:
        return load_mnist_sample(normalize, flatten, one_hot_label)
    if text == "mnist":
        return load_mnist(normalize, flatten, one_hot_label, data_dir=data_dir,
                          download=download, strict=strict, **kwargs)
    return load_fashion_mnist(normalize, flatten, one_hot_label, data_dir=data_dir,
                              download=download, strict=strict, **kwargs)
