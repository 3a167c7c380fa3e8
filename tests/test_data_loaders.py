"""load_mnist & co.: book shapes and dtypes, lookup order, local verification, the bundled
sample and the offline fallback."""

from __future__ import annotations

import gzip
import io
import sys
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from data_helpers import FASHION_DIR, SHARED_MNIST, make_tiny_set, sha256
from groundup.data import (
    DATASETS,
    DatasetUnavailableError,
    data_home,
    dataset_cache_dir,
    file_status,
    get_spec,
    load_fashion_mnist,
    load_idx_dataset,
    load_idx_file,
    load_mnist,
    load_mnist_sample,
    loaders,
    stratified_permutation,
)
from groundup.data.loaders import _sample_split
from groundup.data.registry import SAMPLE_FILE, SAMPLE_TEST_FILE, SAMPLE_TEST_RAW_SHA256

SAMPLE_PATH = resources.files("groundup.data").joinpath(SAMPLE_FILE)
FLAGS = [(n, f, o) for n in (True, False) for f in (True, False) for o in (True, False)]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROUNDUP_OFFLINE", "1")


@pytest.fixture
def tiny():
    return make_tiny_set()


def _check_book_layout(split, n, normalize, flatten, one_hot_label):
    x, t = split
    assert x.shape == ((n, 784) if flatten else (n, 1, 28, 28))
    if normalize:
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    else:
        assert x.dtype == np.uint8
    if one_hot_label:
        assert t.shape == (n, 10) and t.dtype == np.float32
        np.testing.assert_array_equal(t.sum(axis=1), np.ones(n, np.float32))
    else:
        assert t.shape == (n,) and t.dtype == np.uint8


@pytest.mark.parametrize(("normalize", "flatten", "one_hot_label"), FLAGS)
def test_idx_dataset_book_shapes_and_dtypes(tiny, tmp_path, normalize, flatten, one_hot_label):
    tiny.write(tmp_path / "d")
    (train, test) = load_idx_dataset(tiny.spec, normalize, flatten, one_hot_label,
                                     data_dir=tmp_path / "d")
    _check_book_layout(train, 30, normalize, flatten, one_hot_label)
    _check_book_layout(test, 20, normalize, flatten, one_hot_label)
    x = train[0].reshape(30, 28, 28)
    expected = tiny.arrays["train_images"]
    if normalize:
        np.testing.assert_allclose(x, expected / np.float32(255), rtol=1e-6)
    else:
        np.testing.assert_array_equal(x, expected)
    labels = train[1].argmax(axis=1) if one_hot_label else train[1]
    np.testing.assert_array_equal(labels, tiny.arrays["train_labels"])


@pytest.mark.parametrize(("normalize", "flatten", "one_hot_label"), FLAGS)
def test_sample_book_shapes_and_dtypes(normalize, flatten, one_hot_label):
    (train, test) = load_mnist_sample(normalize, flatten, one_hot_label)
    _check_book_layout(train, 5000, normalize, flatten, one_hot_label)
    _check_book_layout(test, 10000, normalize, flatten, one_hot_label)


def test_sample_trains_on_all_5000_digits_and_tests_on_the_official_10000():
    loaded = load_mnist_sample(normalize=False)
    (x_train, t_train), (x_test, t_test) = loaded
    assert loaded.info.n_train == 5000 and loaded.info.n_test == 10000
    assert np.bincount(t_train, minlength=10).tolist() == [500] * 10
    # the official test set's class counts
    assert np.bincount(t_test, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892,
                                                          958, 1028, 974, 1009]
    train_rows = {r.tobytes() for r in x_train}
    assert len(train_rows) == 5000
    assert not train_rows & {r.tobytes() for r in x_test}  # training digits, not test ones


def test_sample_training_digits_are_the_bundled_ones_reordered():
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    (x_train, t_train), _ = load_mnist_sample(normalize=False, flatten=False)
    order = {r.tobytes(): i for i, r in enumerate(images)}
    index = np.array([order[r.tobytes()] for r in x_train[:, 0]])
    assert sorted(index.tolist()) == list(range(5000))
    np.testing.assert_array_equal(t_train, labels[index])
    assert not np.array_equal(index, np.arange(5000))  # shuffled, not the sorted file


@pytest.mark.parametrize("size", [10, 300, 500, 1000, 5000])
def test_sample_book_slices_hold_every_digit_equally(size):
    (_, t_train), _ = load_mnist_sample()
    assert np.bincount(t_train[:size], minlength=10).tolist() == [size // 10] * 10


def test_sample_order_is_random_within_the_strata():
    (_, t_train), _ = load_mnist_sample()
    blocks = t_train.reshape(500, 10)
    assert (np.sort(blocks, axis=1) == np.arange(10)).all()
    assert len({tuple(b) for b in blocks.tolist()}) > 400  # not one fixed digit order


def test_stratified_permutation_keeps_proportions_in_every_prefix():
    labels = np.repeat(np.arange(3), [60, 30, 10])
    order = stratified_permutation(labels, 7)
    assert sorted(order.tolist()) == list(range(100))
    np.testing.assert_array_equal(order, stratified_permutation(labels, 7))
    shares = np.array([60, 30, 10]) / 100
    for length in range(1, 101):
        counts = np.bincount(labels[order[:length]], minlength=3)
        assert np.all(np.abs(counts - length * shares) <= 1)
    assert not np.array_equal(order, stratified_permutation(labels, 8))


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_sample_test_set_equals_the_official_t10k_files():
    raw_images = gzip.decompress((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    raw_labels = gzip.decompress((SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    # the uncompressed SHA-256 values listed in ../shared/data/README.md
    assert sha256(raw_images) == ("0fa7898d509279e482958e8ce81c8e77"
                                  "db3f2f8254e26661ceb7762c4d494ce7")
    assert sha256(raw_labels) == ("ff7bcfd416de33731a308c3f266cc351"
                                  "222c34898ecbeaf847f06e48f7ec33f2")
    # IDX: magic and sizes, big-endian uint32, then the uint8 data
    assert raw_images[:16] == bytes.fromhex("00000803 00002710 0000001c 0000001c")
    assert raw_labels[:8] == bytes.fromhex("00000801 00002710")
    official_images = np.frombuffer(raw_images, np.uint8, offset=16).reshape(10000, 28, 28)
    official_labels = np.frombuffer(raw_labels, np.uint8, offset=8)
    _, (x_test, t_test) = load_mnist_sample(normalize=False, flatten=False)
    np.testing.assert_array_equal(x_test[:, 0], official_images)
    np.testing.assert_array_equal(t_test, official_labels)


def test_sample_ignores_global_random_state():
    saved = np.random.get_state()  # noqa: NPY002 (the global state must not matter)
    try:
        np.random.seed(1)  # noqa: NPY002
        first = load_mnist_sample()
        _sample_split.cache_clear()
        np.random.seed(2)  # noqa: NPY002
        second = load_mnist_sample()
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[0][1], second[0][1])
    np.testing.assert_array_equal(first[1][1], second[1][1])


def test_sample_arrays_are_fresh_copies():
    (x_train, t_train), (x_test, t_test) = load_mnist_sample(normalize=False)
    for array in (x_train, t_train, x_test, t_test):
        array[:] = 0
    (x_again, t_again), (x_test_again, t_test_again) = load_mnist_sample(normalize=False)
    assert x_again.max() == 255 and t_again.max() == 9
    assert x_test_again.max() == 255 and t_test_again.max() == 9


@pytest.fixture
def tampered_bundle(monkeypatch):
    """Serve changed bundled files to the loader (and drop its cache around the test)."""
    real = loaders._bundled_bytes
    changes: dict[str, bytes] = {}

    def fake(filename):
        return changes.get(filename, real(filename))

    monkeypatch.setattr(loaders, "_bundled_bytes", fake)
    _sample_split.cache_clear()
    yield changes
    _sample_split.cache_clear()


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_sample_rejects_a_changed_test_image_in_one_line(tampered_bundle):
    with np.load(io.BytesIO(loaders._bundled_bytes(SAMPLE_TEST_FILE)),
                 allow_pickle=False) as npz:
        images, labels = npz["images"].copy(), npz["labels"]
    images[1234, 14, 14] ^= 1
    tampered_bundle[SAMPLE_TEST_FILE] = _npz_bytes(images=images, labels=labels)
    expected = SAMPLE_TEST_RAW_SHA256["images"]
    with pytest.raises(ValueError, match=rf"^load_mnist_sample: the SHA-256 of the images of "
                       rf"mnist-test-10k\.npz \(as IDX bytes\) must be {expected}; got the "
                       rf"SHA-256 of the images of mnist-test-10k\.npz \(as IDX bytes\)="
                       rf"[0-9a-f]{{64}}\. The file is damaged; reinstall groundup\.$") as caught:
        load_mnist_sample()
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="SHA-256 of the images"):
        load_mnist()  # the offline fallback does not hide a damaged file


def test_sample_rejects_a_changed_test_label(tampered_bundle):
    with np.load(io.BytesIO(loaders._bundled_bytes(SAMPLE_TEST_FILE)),
                 allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"].copy()
    labels[0] = (labels[0] + 1) % 10
    tampered_bundle[SAMPLE_TEST_FILE] = _npz_bytes(images=images, labels=labels)
    with pytest.raises(ValueError, match="the SHA-256 of the labels of "
                       r"mnist-test-10k\.npz \(as IDX bytes\) must be " +
                       SAMPLE_TEST_RAW_SHA256["labels"]):
        load_mnist_sample()


def test_sample_rejects_a_changed_training_file(tampered_bundle):
    data = bytearray(loaders._bundled_bytes(SAMPLE_FILE))
    data[-30] ^= 0xFF
    tampered_bundle[SAMPLE_FILE] = bytes(data)
    with pytest.raises(ValueError, match=r"^load_mnist_sample: the SHA-256 of the bundled "
                       r"mnist-train-sample-5k\.npz must be [0-9a-f]{64}; got .*reinstall"):
        load_mnist_sample()


@pytest.mark.parametrize("content", [b"not a zip file", "pickled"])
def test_sample_unreadable_test_file_is_a_one_line_error(tampered_bundle, content):
    if content == "pickled":
        content = _npz_bytes(images=np.array([None], dtype=object), labels=np.zeros(1))
    tampered_bundle[SAMPLE_TEST_FILE] = content
    with pytest.raises(ValueError, match=r"^load_mnist_sample: the bundled mnist-test-10k\.npz "
                       r"must be a readable \.npz with arrays 'images' and 'labels'; got "
                       r"the bundled mnist-test-10k\.npz=an unreadable file") as caught:
        load_mnist_sample()
    assert "\n" not in str(caught.value)


def test_load_mnist_offline_falls_back_with_one_line(capsys):
    loaded = load_mnist()
    (x_train, t_train), (x_test, t_test) = loaded
    assert x_train.shape == (5000, 784) and x_test.shape == (10000, 784)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("using the bundled MNIST sample: 5,000 real training digits for training and the "
            "official 10,000 test digits for test.") in err
    assert "--data-dir" in err and "groundup data download mnist" in err
    info = loaded.info.to_dict()
    assert info["fallback"] is True and info["source"] == "bundled-sample"
    assert info["n_train"] == 5000 and info["n_test"] == 10000
    assert "GROUNDUP_OFFLINE" in info["reason"]


def test_book_load_mnist_works_offline(capsys):
    from groundup import book

    (x_train, t_train), (x_test, t_test) = book.load_mnist(normalize=True, flatten=True,
                                                           one_hot_label=True)
    assert x_train.shape == (5000, 784) and x_test.shape == (10000, 784)
    assert t_train.shape == (5000, 10) and t_test.shape == (10000, 10)
    assert "bundled MNIST sample" in capsys.readouterr().err
    (x_img, _), _ = book.load_mnist(flatten=False, normalize=False)
    assert x_img.shape == (5000, 1, 28, 28) and x_img.dtype == np.uint8


def test_load_mnist_download_false_also_falls_back(monkeypatch, capsys):
    monkeypatch.delenv("GROUNDUP_OFFLINE")
    loaded = load_mnist(download=False)
    assert loaded.info.fallback
    assert "downloads are off" in capsys.readouterr().err


def test_load_mnist_strict_raises_naming_files_and_fix(capsys):
    with pytest.raises(DatasetUnavailableError, match=r"load_mnist: the MNIST handwritten digits "
                       r"files must be in a data directory or downloadable; got missing="
                       r"train-images-idx3-ubyte\.gz.*Pass --data-dir DIR.*groundup data "
                       r"download mnist"):
        load_mnist(strict=True)
    assert capsys.readouterr().err == ""


def test_lookup_prefers_data_dir_over_cache(tiny, tmp_path):
    other = make_tiny_set(seed=5)
    spec = tiny.spec
    other.write(dataset_cache_dir(spec.name))
    # registry digests belong to `tiny`: the cache copy is `other`, a different data set
    tiny.write(tmp_path / "mine")
    loaded = load_idx_dataset(spec, normalize=False, data_dir=tmp_path / "mine")
    assert loaded.info.location == str(tmp_path / "mine")
    np.testing.assert_array_equal(loaded[1][1], tiny.arrays["test_labels"])


def test_lookup_uses_cache_then_system_dir(tiny, tmp_path):
    spec = replace(tiny.spec, system_dirs=(tmp_path / "system",))
    tiny.write(tmp_path / "system")
    assert load_idx_dataset(spec).info.location == str(tmp_path / "system")
    tiny.write(dataset_cache_dir(spec.name))
    assert load_idx_dataset(spec).info.location == str(dataset_cache_dir(spec.name))


def test_bad_cache_copy_is_skipped_for_a_good_system_copy(tiny, tmp_path):
    spec = replace(tiny.spec, system_dirs=(tmp_path / "system",))
    tiny.write(tmp_path / "system")
    make_tiny_set(seed=9).write(dataset_cache_dir(spec.name))
    assert load_idx_dataset(spec).info.location == str(tmp_path / "system")
    states = file_status(spec)
    assert {s.status for s in states} == {"ok"}


def test_recompressed_and_uncompressed_local_copies_are_accepted(tiny, tmp_path):
    folder = tmp_path / "d"
    tiny.write(folder, roles=("train_images", "train_labels"), compress=False)
    for role in ("test_images", "test_labels"):
        name = tiny.spec.file(role).filename
        recompressed = gzip.compress(tiny.raw[role], compresslevel=1, mtime=12345)
        assert recompressed != tiny.gz[role]
        (folder / name).write_bytes(recompressed)
    (x_train, _), (x_test, _) = load_idx_dataset(tiny.spec, normalize=False, data_dir=folder)
    np.testing.assert_array_equal(x_test.reshape(-1, 28, 28), tiny.arrays["test_images"])


def test_corrupt_copy_in_explicit_data_dir_is_an_error(tiny, tmp_path):
    folder = tiny.write(tmp_path / "d")
    name = tiny.spec.file("train_labels").filename
    (folder / name).write_bytes(gzip.compress(tiny.raw["test_labels"]))
    with pytest.raises(ValueError, match=rf"uncompressed SHA-256 of .*{name} must be"):
        load_idx_dataset(tiny.spec, data_dir=folder)


def test_image_label_count_mismatch_in_a_data_set(tmp_path):
    tiny = make_tiny_set()
    short = make_tiny_set(n_train=25)
    files = (short.spec.file("train_images"), *tiny.spec.files[1:])
    spec = replace(tiny.spec, files=files)
    short.write(tmp_path / "d", roles=("train_images",))
    tiny.write(tmp_path / "d", roles=("train_labels", "test_images", "test_labels"))
    with pytest.raises(ValueError, match=r"image and label counts of tiny train must be equal; "
                                         r"got .*=25 images, 30 labels"):
        load_idx_dataset(spec, data_dir=tmp_path / "d")


def test_unavailable_idx_dataset_error(tiny, tmp_path):
    with pytest.raises(DatasetUnavailableError, match=r"load_tiny: .*got missing=.*looked in "
                       rf"{tmp_path / 'empty'}.*GROUNDUP_OFFLINE"):
        load_idx_dataset(tiny.spec, data_dir=tmp_path / "empty")


def test_data_home_respects_groundup_home(tmp_path):
    assert data_home() == tmp_path / "home" / "datasets"


def test_data_home_without_platformdirs_uses_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("GROUNDUP_HOME")
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "groundup" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert data_home() == tmp_path / "user" / ".cache" / "groundup" / "datasets"


def test_data_home_with_platformdirs(monkeypatch):
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.delenv("GROUNDUP_HOME")
    expected = platformdirs.user_cache_dir("groundup")
    assert str(data_home()) == str(expected) + "/datasets"


def test_load_idx_file_rejects_unknown_role():
    with pytest.raises(ValueError, match=r"role must be one of the known names.*did you mean "
                                         r"'test_labels'"):
        load_idx_file("mnist", "test_label")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_real_mnist_files_load_through_the_public_loader():
    images = load_idx_file("mnist", "test_images", data_dir=SHARED_MNIST)
    labels = load_idx_file("mnist", "test_labels", data_dir=SHARED_MNIST)
    train_labels = load_idx_file("mnist", "train_labels", data_dir=SHARED_MNIST)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.uint8 and np.bincount(labels).tolist()[:2] == [980, 1135]
    assert train_labels.shape == (60000,) and np.bincount(train_labels)[1] == 6742


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_real_mnist_dir_without_training_images_strict_error():
    with pytest.raises(DatasetUnavailableError, match=r"got missing=train-images-idx3-ubyte\.gz "
                                                      r"\(looked in"):
        load_mnist(data_dir=SHARED_MNIST, strict=True)
    states = file_status("mnist", SHARED_MNIST)
    assert [s.status for s in states] == ["missing", "ok", "ok", "ok"]


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_loads_from_the_system_dir():
    loaded = load_fashion_mnist(normalize=True, flatten=False, one_hot_label=False)
    (x_train, t_train), (x_test, t_test) = loaded
    assert loaded.info.location == str(FASHION_DIR) and loaded.info.source == "local"
    assert x_train.shape == (60000, 1, 28, 28) and x_train.dtype == np.float32
    assert x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(t_train).tolist() == [6000] * 10
    assert np.bincount(t_test).tolist() == [1000] * 10
    assert get_spec("fashion-mnist").class_names[int(t_train[0])] == "Ankle boot"


def test_fashion_mnist_has_no_fallback(tmp_path, monkeypatch, capsys):
    spec = get_spec("fashion-mnist")
    monkeypatch.setitem(DATASETS, "fashion-mnist", replace(spec, system_dirs=(tmp_path / "no",)))
    with pytest.raises(DatasetUnavailableError, match=r"load_fashion_mnist: the Fashion-MNIST "
                       r".*groundup data download fashion-mnist"):
        load_fashion_mnist()
    with pytest.raises(DatasetUnavailableError):
        load_fashion_mnist(strict=False)
    assert capsys.readouterr().err == ""
