"""MNIST, Fashion-MNIST and the bundled MNIST sample, with the book's shapes and dtypes.

Each of the four IDX files of a data set is looked for, in order, in: the explicit
``data_dir``; the per-user cache (``download.dataset_cache_dir``); the data set's system
directories (``/usr/share/datasets/fashion-mnist`` from Debian's ``dataset-fashion-mnist``).
A file may be stored as ``name.gz`` or uncompressed; a local copy is accepted when the
SHA-256 of its *uncompressed* bytes matches the registry, so recompressed copies are fine.
Files still missing are downloaded (``download.fetch_file``) into ``data_dir`` when given,
else the cache.

When full MNIST can be neither found nor downloaded, ``load_mnist`` returns the bundled
sample (5,000 real MNIST training digits for training, the official 10,000 test digits for
test) and prints one line on stderr saying so; ``strict=True`` raises
``DatasetUnavailableError`` instead. Where the data came from is recorded in ``result.info``
(a ``DatasetInfo``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from groundup._checks import value_error
from groundup.data.download import (
    DEFAULT_TIMEOUT,
    ChecksumError,
    DownloadError,
    ProgressCallback,
    dataset_cache_dir,
    fetch_file,
    offline,
)
from groundup.data.idx import check_images_labels, read_idx, to_idx_bytes
from groundup.data.registry import (
    DATASETS,
    ROLES,
    SAMPLE_FILE,
    SAMPLE_NAME,
    SAMPLE_SHA256,
    SAMPLE_TEST_FILE,
    SAMPLE_TEST_RAW_SHA256,
    DatasetSpec,
    RemoteFile,
    get_spec,
)
from groundup.data.transforms import format_images, format_labels, stratified_permutation

SAMPLE_SEED = 20160924

Split = tuple[np.ndarray, np.ndarray]


class DatasetUnavailableError(FileNotFoundError):
    """A data set's files are neither present locally nor downloadable."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where a loaded data set came from.

    Attributes:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"mnist-sample"`` or the user file's path.
        source: ``"local"`` (data_dir, cache or system dir), ``"download"`` (at least one
            file fetched now), ``"bundled-sample"`` or ``"file"`` (a user .npz/.csv).
        location: the directory or file read.
        fallback: True when the bundled sample stands in for full MNIST.
        reason: why the fallback happened (None otherwise).
        n_train, n_test: examples per split.
        num_classes: number of classes.
    """

    name: str
    source: str
    location: str
    n_train: int
    n_test: int
    num_classes: int
    fallback: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for a run's config/results files)."""
        return asdict(self)


class LoadedDataset(tuple):
    """``((x_train, t_train), (x_test, t_test))`` — unpacks like the book's tuple — with
    an ``info`` attribute (``DatasetInfo``)."""

    info: DatasetInfo

    def __new__(cls, train: Split, test: Split, info: DatasetInfo) -> LoadedDataset:
        obj = super().__new__(cls, (tuple(train), tuple(test)))
        obj.info = info
        return obj

    @property
    def train(self) -> Split:
        return self[0]

    @property
    def test(self) -> Split:
        return self[1]


@dataclass(frozen=True)
class FileStatus:
    """The state of one data set file: ``status`` is ``"ok"``, ``"missing"`` or ``"bad"``."""

    role: str
    filename: str
    status: str
    where: str | None = None
    path: str | None = None
    detail: str = ""


def search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None = None
                ) -> list[tuple[str, Path]]:
    """``[(kind, dir), ...]`` in lookup order; kind is ``data_dir``, ``cache`` or ``system``."""
    dirs: list[tuple[str, Path]] = []
    if data_dir is not None:
        dirs.append(("data_dir", Path(data_dir).expanduser()))
    dirs.append(("cache", dataset_cache_dir(spec.name)))
    dirs.extend(("system", d) for d in spec.system_dirs)
    return dirs


def _find_local(spec: DatasetSpec, entry: RemoteFile, data_dir: str | os.PathLike | None,
                problems: list[str]) -> tuple[np.ndarray, str, Path] | None:
    """The first verified local copy of ``entry``, or None. A bad copy in an explicit
    ``data_dir`` is an error; elsewhere it is noted in ``problems`` and skipped."""
    for kind, folder in search_dirs(spec, data_dir):
        for candidate in (folder / entry.filename, folder / entry.raw_name):
            if not candidate.is_file():
                continue
            try:
                array = read_idx(candidate, raw_sha256=entry.raw_sha256,
                                 max_bytes=entry.max_raw_size)
                return array, kind, candidate
            except ValueError as exc:
                if kind == "data_dir":
                    raise
                problems.append(str(exc))
    return None


def file_status(spec: DatasetSpec | str, data_dir: str | os.PathLike | None = None
                ) -> list[FileStatus]:
    """Check each file of a data set in lookup order without downloading anything."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    out = []
    for entry in spec.files:
        status = FileStatus(entry.role, entry.filename, "missing")
        for kind, folder in search_dirs(spec, data_dir):
            hit = next((c for c in (folder / entry.filename, folder / entry.raw_name)
                        if c.is_file()), None)
            if hit is None:
                continue
            try:
                read_idx(hit, raw_sha256=entry.raw_sha256, max_bytes=entry.max_raw_size)
            except ValueError as exc:
                status = FileStatus(entry.role, entry.filename, "bad", kind, str(hit), str(exc))
                continue
            status = FileStatus(entry.role, entry.filename, "ok", kind, str(hit))
            break
        out.append(status)
    return out


def _unavailable_message(owner: str, spec: DatasetSpec, missing: list[RemoteFile],
                         data_dir: str | os.PathLike | None, problems: list[str],
                         download: bool) -> str:
    names = ", ".join(e.filename for e in missing)
    looked = ", ".join(str(d) for _, d in search_dirs(spec, data_dir))
    if not download:
        fetched = "downloads were disabled (download=False)"
    elif offline():
        fetched = "downloads were disabled ($GROUNDUP_OFFLINE is set)"
    else:
        fetched = "download failed"
    detail = "; ".join(problems)
    detail = f": {detail}" if detail else ""
    return (f"{owner}: the {spec.title} files must be in a data directory or downloadable; "
            f"got missing={names} (looked in {looked}; {fetched}{detail}). Pass --data-dir DIR "
            f"holding the files, or run `groundup data download {spec.name}` on a machine "
            "with network access.")


def _collect(owner: str, spec: DatasetSpec, data_dir: str | os.PathLike | None, download: bool,
             mirrors: Sequence[str] | None, timeout: float,
             progress: bool | ProgressCallback | None,
             roles: Sequence[str] = ROLES) -> tuple[dict[str, np.ndarray], str, str]:
    """Verified arrays for ``roles``; returns (arrays, source, location)."""
    arrays: dict[str, np.ndarray] = {}
    kinds: set[str] = set()
    folders: list[str] = []
    problems: list[str] = []
    missing: list[RemoteFile] = []
    for role in roles:
        entry = spec.file(role)
        found = _find_local(spec, entry, data_dir, problems)
        if found is None:
            missing.append(entry)
            continue
        arrays[role], kind, path = found
        kinds.add(kind)
        folders.append(str(path.parent))
    if missing and download and not offline():
        dest = Path(data_dir).expanduser() if data_dir is not None \
            else dataset_cache_dir(spec.name)
        mirror_list = spec.mirrors if mirrors is None else tuple(mirrors)
        while missing:
            entry = missing[0]
            try:
                path = fetch_file(entry, dest, mirror_list, timeout=timeout, progress=progress)
                arrays[entry.role] = read_idx(path, raw_sha256=entry.raw_sha256,
                                              max_bytes=entry.max_raw_size)
            except (DownloadError, ChecksumError, ValueError) as exc:
                # one failure means the mirrors are unreachable or wrong: stop, don't retry
                # every remaining file
                problems.append(str(exc))
                break
            missing.pop(0)
            kinds.add("download")
            folders.append(str(dest))
    if missing:
        raise DatasetUnavailableError(
            _unavailable_message(owner, spec, missing, data_dir, problems, download))
    source = "download" if "download" in kinds else "local"
    location = os.pathsep.join(dict.fromkeys(folders))
    return arrays, source, location


def _check_labels(spec: DatasetSpec, labels: np.ndarray, role: str) -> None:
    if labels.size and int(labels.max()) >= spec.num_classes:
        raise value_error(spec.name, f"the {role}", f"class labels in [0, {spec.num_classes - 1}]",
                          f"=values up to {int(labels.max())}")


def load_idx_file(dataset: str | DatasetSpec, role: str, *,
                  data_dir: str | os.PathLike | None = None, download: bool = False,
                  mirrors: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                  progress: bool | ProgressCallback | None = None) -> np.ndarray:
    """One verified file of a data set as stored: images (N, H, W) uint8 or labels (N,) uint8.

    Args:
        dataset: ``"mnist"``, ``"fashion-mnist"`` or a ``DatasetSpec``.
        role: ``"train_images"``, ``"train_labels"``, ``"test_images"`` or ``"test_labels"``.
        data_dir, download, mirrors, timeout, progress: as for ``load_mnist``.

    Raises:
        DatasetUnavailableError: not found (and not downloadable).
    """
    spec = get_spec(dataset) if isinstance(dataset, str) else dataset
    spec.file(role)
    arrays, _, _ = _collect("load_idx_file", spec, data_dir, download, mirrors, timeout,
                            progress, roles=(role,))
    return arrays[role]


def _assemble(spec: DatasetSpec, arrays: dict[str, np.ndarray], normalize: bool, flatten: bool,
              one_hot_label: bool) -> tuple[Split, Split]:
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        check_images_labels(images, labels, f"{spec.name} {split}")
        _check_labels(spec, labels, f"{split} labels")
        splits.append((format_images(images, normalize=normalize, flatten=flatten),
                       format_labels(labels, one_hot_label=one_hot_label,
                                     num_classes=spec.num_classes)))
    return splits[0], splits[1]


def load_idx_dataset(spec: DatasetSpec | str, normalize: bool = True, flatten: bool = True,
                     one_hot_label: bool = False, *, data_dir: str | os.PathLike | None = None,
                     download: bool = True, mirrors: Sequence[str] | None = None,
                     timeout: float = DEFAULT_TIMEOUT,
                     progress: bool | ProgressCallback | None = None) -> LoadedDataset:
    """Load a four-file IDX data set (no fallback); see ``load_mnist`` for the arguments.

    Raises:
        DatasetUnavailableError: a file is neither found locally nor downloadable.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    owner = f"load_{spec.name.replace('-', '_')}"
    arrays, source, location = _collect(owner, spec, data_dir, download, mirrors, timeout,
                                        progress)
    train, test = _assemble(spec, arrays, normalize, flatten, one_hot_label)
    info = DatasetInfo(spec.name, source, location, len(train[1]), len(test[1]),
                       spec.num_classes)
    return LoadedDataset(train, test, info)


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False, *,
               data_dir: str | os.PathLike | None = None, download: bool = True,
               strict: bool = False, mirrors: Sequence[str] | None = None,
               timeout: float = DEFAULT_TIMEOUT,
               progress: bool | ProgressCallback | None = None) -> LoadedDataset:
    """MNIST with the book's shapes and dtypes.

    ``x = pixels / 255`` when ``normalize`` (float32 in [0, 1]), else uint8 pixels.

    Args:
        normalize: float32 in [0, 1] (True) or uint8 0..255 (False).
        flatten: images as (N, 784) (True) or (N, 1, 28, 28) (False).
        one_hot_label: labels as float32 one-hot (N, 10) (True) or uint8 (N,) (False).
            The book's one-hot is float64; float32 is groundup's documented exception.
        data_dir: a directory searched first, and the download target when given.
        download: fetch missing files from the mirrors (also off when ``$GROUNDUP_OFFLINE``
            is set).
        strict: raise when full MNIST is unavailable instead of using the bundled sample.
        mirrors: base URLs overriding the registry's.
        timeout: seconds per connection/read when downloading.
        progress: see ``download.fetch_file``.

    Returns:
        ``((x_train, t_train), (x_test, t_test))`` — 60,000 / 10,000 examples, or 5,000
        real training digits / the official 10,000 test digits from the bundled sample —
        with ``.info`` telling where it came from.

    Raises:
        DatasetUnavailableError: with ``strict``, when the files are neither found nor
            downloadable; the message names the files, the places and URLs tried and the fix.
        ValueError: a corrupt file in an explicit ``data_dir``; a cache dir that cannot be
            created (with ``strict``).
    """
    try:
        return load_idx_dataset("mnist", normalize, flatten, one_hot_label, data_dir=data_dir,
                                download=download, mirrors=mirrors, timeout=timeout,
                                progress=progress)
    except DatasetUnavailableError as exc:
        if strict:
            raise
        reason = str(exc)
    sample = load_mnist_sample(normalize, flatten, one_hot_label)
    info = DatasetInfo(SAMPLE_NAME, "bundled-sample", sample.info.location,
                       sample.info.n_train, sample.info.n_test, 10, fallback=True,
                       reason=reason)
    how = "downloads are off" if not download or offline() else "download failed"
    print("groundup: full MNIST not found locally and " + how + "; using the bundled MNIST "
          f"sample: {info.n_train:,} real training digits for training and the official "
          f"{info.n_test:,} test digits for test. Use --data-dir DIR or `groundup data "
          "download mnist` for the full set (`groundup train --strict` or strict=True makes "
          "this an error).",
          file=sys.stderr)
    return LoadedDataset(sample[0], sample[1], info)


def load_fashion_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False,
                       *, data_dir: str | os.PathLike | None = None, download: bool = True,
                       strict: bool = True, mirrors: Sequence[str] | None = None,
                       timeout: float = DEFAULT_TIMEOUT,
                       progress: bool | ProgressCallback | None = None) -> LoadedDataset:
    """Fashion-MNIST with the same shapes, dtypes and arguments as ``load_mnist``.

    There is no bundled fallback (the sample is digits, not clothes), so ``strict`` is
    accepted for symmetry with ``load_mnist`` and changes nothing: when the files are
    neither found (``/usr/share/datasets/fashion-mnist`` included) nor downloadable,
    ``DatasetUnavailableError`` names them and the fix.
    """
    return load_idx_dataset("fashion-mnist", normalize, flatten, one_hot_label,
                            data_dir=data_dir, download=download, mirrors=mirrors,
                            timeout=timeout, progress=progress)


def _bundled_bytes(filename: str) -> bytes:
    """The bytes of a file shipped in the ``groundup.data`` package."""
    return resources.files("groundup.data").joinpath(filename).read_bytes()


def _read_bundled_npz(filename: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of a bundled .npz (never unpickled), shape-checked."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise value_error("load_mnist_sample", f"the bundled {filename}",
                          "a readable .npz with arrays 'images' and 'labels'",
                          f"=an unreadable file ({exc})", "Reinstall groundup.") from exc
    check_images_labels(images, labels, filename)
    return images, labels


def _check_digest(what: str, expected: str, digest: str) -> None:
    if digest != expected:
        raise value_error("load_mnist_sample", f"the SHA-256 of {what}", expected,
                          f"={digest}", "The file is damaged; reinstall groundup.")


@functools.cache
def _sample_split() -> tuple[Split, Split]:
    data = _bundled_bytes(SAMPLE_FILE)
    _check_digest(f"the bundled {SAMPLE_FILE}", SAMPLE_SHA256, hashlib.sha256(data).hexdigest())
    images, labels = _read_bundled_npz(SAMPLE_FILE, data)
    order = stratified_permutation(labels, SAMPLE_SEED)
    train = (images[order], labels[order])

    test = _read_bundled_npz(SAMPLE_TEST_FILE, _bundled_bytes(SAMPLE_TEST_FILE))
    for key, array in zip(("images", "labels"), test, strict=True):
        # the official t10k files are IDX: re-encoding the arrays must give their bytes
        digest = hashlib.sha256(to_idx_bytes(array)).hexdigest()
        _check_digest(f"the {key} of {SAMPLE_TEST_FILE} (as IDX bytes)",
                      SAMPLE_TEST_RAW_SHA256[key], digest)
    for array in (*train, *test):
        array.setflags(write=False)
    return train, test


def load_mnist_sample(normalize: bool = True, flatten: bool = True,
                      one_hot_label: bool = False) -> LoadedDataset:
    """The bundled offline MNIST: 5,000 real training digits and the official test set.

    Train: the 5,000 real MNIST training digits of the bundled sample (500 per class),
    shuffled once with a fixed seed and stratified (``stratified_permutation``), so every
    prefix the book slices (``x_train[:300]``, ``[:500]``, ``[:1000]``) holds the same
    number of each digit. Test: the official 10,000-image MNIST test set, in its official
    order, checked against the SHA-256 of the official t10k files when first loaded. Same
    shapes and dtypes as ``load_mnist``; needs no file and no network.

    MNIST: Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0.

    Raises:
        ValueError: a bundled file is damaged (its SHA-256 does not match).
    """
    (x_tr, t_tr), (x_te, t_te) = _sample_split()
    train = (format_images(x_tr, normalize=normalize, flatten=flatten),
             format_labels(t_tr, one_hot_label=one_hot_label, num_classes=10))
    test = (format_images(x_te, normalize=normalize, flatten=flatten),
            format_labels(t_te, one_hot_label=one_hot_label, num_classes=10))
    location = str(resources.files("groundup.data").joinpath(SAMPLE_FILE))
    info = DatasetInfo(SAMPLE_NAME, "bundled-sample", location, len(t_tr), len(t_te), 10)
    return LoadedDataset(train, test, info)


def dataset_names() -> list[str]:
    """Names ``load_dataset`` accepts besides file paths."""
    return [*DATASETS, SAMPLE_NAME]
