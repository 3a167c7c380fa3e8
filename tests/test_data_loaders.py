"""load_mnist & co.: book shapes and dtypes, lookup order, local verification, the bundled
sample and the offline fallback."""

from __future__ import annotations

import gzip
import sys
from dataclasses import replace

import numpy as np
import pytest

from data_helpers import FASHION_DIR, SHARED_MNIST, make_tiny_set
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
)

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
    _check_book_layout(train, 4000, normalize, flatten, one_hot_label)
    _check_book_layout(test, 1000, normalize, flatten, one_hot_label)


def test_sample_split_is_stratified_shuffled_and_disjoint():
    (x_train, t_train), (x_test, t_test) = load_mnist_sample(normalize=False)
    assert np.bincount(t_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(t_test, minlength=10).tolist() == [100] * 10
    assert set(t_train[:300].tolist()) == set(range(10))
    assert set(t_test[:100].tolist()) == set(range(10))
    rows = {r.tobytes() for r in x_train} | {r.tobytes() for r in x_test}
    assert len(rows) == 5000


def test_sample_ignores_global_random_state():
    saved = np.random.get_state()  # noqa: NPY002 (the global state must not matter)
    try:
        np.random.seed(1)  # noqa: NPY002
        first = load_mnist_sample()
        np.random.seed(2)  # noqa: NPY002
        second = load_mnist_sample()
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])


def test_sample_arrays_are_fresh_copies():
    (x_train, t_train), _ = load_mnist_sample(normalize=False)
    x_train[:] = 0
    t_train[:] = 0
    (x_again, t_again), _ = load_mnist_sample(normalize=False)
    assert x_again.max() == 255 and t_again.max() == 9


def test_load_mnist_offline_falls_back_with_one_line(capsys):
    loaded = load_mnist()
    (x_train, t_train), (x_test, t_test) = loaded
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "using the bundled MNIST sample (4,000 train / 1,000 test digits)" in err
    assert "--data-dir" in err and "groundup data download mnist" in err
    info = loaded.info.to_dict()
    assert info["fallback"] is True and info["source"] == "bundled-sample"
    assert "GROUNDUP_OFFLINE" in info["reason"]


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
