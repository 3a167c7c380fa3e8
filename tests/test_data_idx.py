"""The IDX reader/writer, and the real MNIST / Fashion-MNIST files through it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from data_helpers import FASHION_DIR, SHARED_MNIST, make_tiny_set
from groundup.data import get_spec, parse_idx, read_idx, to_idx_bytes, write_idx
from groundup.data.idx import check_images_labels

needs_shared = pytest.mark.skipif(not SHARED_MNIST.is_dir(),
                                  reason="../shared/data/mnist is absent")
needs_fashion = pytest.mark.skipif(not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                                   reason="dataset-fashion-mnist is not installed")

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_idx_round_trip_every_type(dtype, tmp_path):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        back = read_idx(write_idx(tmp_path / name, array))
        assert back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back, array)
        back[0] = 0  # writable


def test_idx_header_is_big_endian():
    data = to_idx_bytes(np.array([1, 256], dtype=np.int16))
    assert data[:4] == bytes([0, 0, 0x0B, 1])
    assert data[4:8] == (2).to_bytes(4, "big")
    assert data[8:] == bytes([0, 1, 1, 0])


def test_write_idx_compress_flag_overrides_suffix(tmp_path):
    path = write_idx(tmp_path / "plain.idx", np.zeros(3, np.uint8), compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), np.zeros(3, np.uint8))


def test_write_idx_rejects_unsupported_dtype():
    with pytest.raises(TypeError, match=r"write_idx: array.dtype must be one of uint8"):
        to_idx_bytes(np.zeros(3, dtype=np.uint64))


def test_write_idx_rejects_scalar():
    with pytest.raises(ValueError, match=r"write_idx: array.ndim must be in \[1, 255\]"):
        to_idx_bytes(np.array(3, dtype=np.uint8))


@pytest.mark.parametrize("head", [b"\x08\x03\x00\x00", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00",
                                  b"PK\x03\x04"])
def test_parse_idx_wrong_magic_number(head):
    with pytest.raises(ValueError, match=r"read_idx: the magic number of x\.idx must be 00 00 TT "
                                         r"DD.*not an IDX file"):
        parse_idx(head + b"\x00" * 12, "x.idx")


def test_parse_idx_too_short_for_magic():
    with pytest.raises(ValueError, match=r"header of x must be at least 4 bytes; got .*=2 bytes"):
        parse_idx(b"\x00\x00", "x")


def test_parse_idx_truncated_header():
    with pytest.raises(ValueError, match=r"header of x must be 16 bytes for 3 dims.*truncated"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0, 0, 2]), "x")


def test_parse_idx_truncated_data():
    data = to_idx_bytes(np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"data length of t\.idx must be 100 bytes for shape "
                                         r"\(4, 5, 5\); got .*=99 bytes\. the file is truncated"):
        parse_idx(data[:-1], "t.idx")


def test_parse_idx_trailing_bytes():
    data = to_idx_bytes(np.zeros(4, np.uint8)) + b"\x00"
    with pytest.raises(ValueError, match=r"longer than its header says"):
        parse_idx(data, "t.idx")


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(to_idx_bytes(np.zeros((50, 28, 28), np.uint8)))[:-40])
    with pytest.raises(ValueError, match=r"read_idx: the file must be a complete gzip stream; "
                                         r"got the file=.*cut\.gz"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"read_idx: path must be an existing file"):
        read_idx(tmp_path / "nope.gz")


def test_read_idx_checksum_mismatch_names_file(tmp_path):
    tiny = make_tiny_set()
    folder = tiny.write(tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    wrong = tiny.spec.file("train_labels").raw_sha256
    with pytest.raises(ValueError, match=r"uncompressed SHA-256 of .*t10k-labels-idx1-ubyte\.gz "
                                         r"must be " + wrong):
        read_idx(path, raw_sha256=wrong)


def test_image_label_count_mismatch():
    with pytest.raises(ValueError, match=r"image and label counts of demo must be equal; got .*"
                                         r"=3 images, 2 labels"):
        check_images_labels(np.zeros((3, 2, 2), np.uint8), np.zeros(2, np.uint8), "demo")


@pytest.mark.parametrize(("images", "labels", "pattern"), [
    (np.zeros((3, 4), np.uint8), np.zeros(3, np.uint8), r"images must be 3-D"),
    (np.zeros((3, 2, 2), np.uint8), np.zeros((3, 1), np.uint8), r"labels must be 1-D"),
])
def test_image_label_ranks(images, labels, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_images_labels(images, labels)


@needs_shared
def test_real_mnist_test_set_loads_with_verified_checksums():
    spec = get_spec("mnist")
    images = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz",
                      raw_sha256=spec.file("test_images").raw_sha256)
    labels = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz",
                      raw_sha256=spec.file("test_labels").raw_sha256)
    check_images_labels(images, labels)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert images.max() == 255 and images.min() == 0


@needs_shared
def test_real_mnist_train_labels_load_with_verified_checksum():
    labels = read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz",
                      raw_sha256=get_spec("mnist").file("train_labels").raw_sha256)
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS


@needs_shared
def test_real_mnist_files_reject_the_other_files_checksum():
    wrong = get_spec("mnist").file("train_labels").raw_sha256
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz must be"):
        read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", raw_sha256=wrong)


@needs_fashion
@pytest.mark.parametrize(("role", "n"), [("train_labels", 60000), ("test_labels", 10000),
                                         ("test_images", 10000)])
def test_real_fashion_mnist_files_verify(role, n):
    entry = get_spec("fashion-mnist").file(role)
    array = read_idx(FASHION_DIR / entry.filename, raw_sha256=entry.raw_sha256)
    assert array.shape[0] == n and array.dtype == np.uint8
    if role.endswith("labels"):
        assert np.bincount(array, minlength=10).tolist() == [n // 10] * 10


def test_a_gzip_bomb_in_a_data_dir_is_refused_with_bounded_memory(tmp_path):
    import gzip
    import tracemalloc

    from groundup.data import load_mnist
    from groundup.data.registry import LARGEST_RAW_SIZE

    bomb = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(b"\x00\x00\x08\x01" + (300_000_000).to_bytes(4, "big"))
        chunk = bytes(1 << 20)
        for _ in range(300):  # 300 MB of zeros in ~300 KB
            fh.write(chunk)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"uncompressed size of .*train-labels.* must be "
                                             r"at most 60,008 bytes"):
            load_mnist(data_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    largest = max(LARGEST_RAW_SIZE.values())
    assert peak <= 2 * largest


def test_an_idx_header_whose_sizes_wrap_int64_names_the_file(tmp_path):
    from groundup.data import read_idx

    path = tmp_path / "wrap-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + (2 ** 31).to_bytes(4, "big") * 2
                     + (4).to_bytes(4, "big"))
    with pytest.raises(ValueError, match=r"wrap-idx3-ubyte must be 18446744073709551616 bytes "
                                         r"for shape \(2147483648, 2147483648, 4\)"):
        read_idx(path)
