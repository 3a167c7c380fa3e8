"""Data sets that always load: MNIST, Fashion-MNIST, a bundled real MNIST sample, and the
user's own ``.npz``/``.csv`` files, plus the array helpers the book's programs use.

``load_mnist(normalize, flatten, one_hot_label)`` returns the book's
``((x_train, t_train), (x_test, t_test))``. Files are found in ``data_dir``, the per-user
cache (``$GROUNDUP_HOME``), system dirs, or downloaded from mirrors with size and SHA-256
checks; offline with nothing cached, MNIST falls back to the bundled data (5,000 real training
digits, the official 10,000 test digits) and says so.
No pickle anywhere: arrays are read with ``allow_pickle=False``.
"""

from groundup.data.download import (
    ChecksumError,
    DownloadError,
    data_home,
    dataset_cache_dir,
    download_dataset,
    fetch_file,
)
from groundup.data.idx import parse_idx, read_idx, to_idx_bytes, write_idx
from groundup.data.loaders import (
    DatasetInfo,
    DatasetUnavailableError,
    FileStatus,
    LoadedDataset,
    dataset_names,
    file_status,
    load_fashion_mnist,
    load_idx_dataset,
    load_idx_file,
    load_mnist,
    load_mnist_sample,
)
from groundup.data.registry import DATASETS, DatasetSpec, RemoteFile, get_spec
from groundup.data.transforms import (
    shuffle_dataset,
    stratified_permutation,
    to_one_hot,
    train_val_split,
)
from groundup.data.user import load_csv, load_dataset, load_npz

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DatasetInfo",
    "DatasetSpec",
    "DatasetUnavailableError",
    "DownloadError",
    "FileStatus",
    "LoadedDataset",
    "RemoteFile",
    "data_home",
    "dataset_cache_dir",
    "dataset_names",
    "download_dataset",
    "fetch_file",
    "file_status",
    "get_spec",
    "load_csv",
    "load_dataset",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_idx_file",
    "load_mnist",
    "load_mnist_sample",
    "load_npz",
    "parse_idx",
    "read_idx",
    "shuffle_dataset",
    "stratified_permutation",
    "to_idx_bytes",
    "to_one_hot",
    "train_val_split",
    "write_idx",
]
