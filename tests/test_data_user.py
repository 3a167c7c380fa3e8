"""A user's own .npz / .csv files, and load_dataset's dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from groundup.data import load_csv, load_dataset, load_npz


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROUNDUP_OFFLINE", "1")


def _arrays(n_train=12, n_test=6, shape=(784,), classes=3, dtype=np.uint8):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape)).astype(dtype),
        "t_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape)).astype(dtype),
        "t_test": np.arange(n_test) % classes,
    }


def _save(tmp_path, **arrays):
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    return path


def test_load_npz_flat_uint8_book_layout(tmp_path):
    arrays = _arrays()
    loaded = load_npz(_save(tmp_path, **arrays))
    (x_train, t_train), (x_test, t_test) = loaded
    assert x_train.shape == (12, 784) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train * 255, arrays["x_train"], rtol=1e-5)
    assert t_train.dtype == np.uint8 and x_test.shape == (6, 784)
    assert loaded.info.source == "file" and loaded.info.num_classes == 3


def test_load_npz_unflattens_square_images(tmp_path):
    (x_train, t_train), _ = load_npz(_save(tmp_path, **_arrays()), flatten=False,
                                     one_hot_label=True)
    assert x_train.shape == (12, 1, 28, 28) and t_train.shape == (12, 3)


def test_load_npz_4d_images_kept_or_flattened(tmp_path):
    path = _save(tmp_path, **_arrays(shape=(3, 4, 4), dtype=np.float32))
    (x4, _), _ = load_npz(path, flatten=False, normalize=False)
    assert x4.shape == (12, 3, 4, 4) and x4.dtype == np.float32
    (x2, _), _ = load_npz(path)
    assert x2.shape == (12, 48)


def test_load_npz_without_test_split_gives_empty_test(tmp_path):
    arrays = _arrays()
    path = _save(tmp_path, x_train=arrays["x_train"], t_train=arrays["t_train"])
    loaded = load_npz(path, normalize=False)
    (_, _), (x_test, t_test) = loaded
    assert x_test.shape == (0, 784) and t_test.shape == (0,) and loaded.info.n_test == 0


def test_load_npz_one_hot_labels_in_file(tmp_path):
    arrays = _arrays()
    arrays["t_train"] = np.eye(3, dtype=np.float32)[arrays["t_train"]]
    (_, t_train), _ = load_npz(_save(tmp_path, **arrays))
    np.testing.assert_array_equal(t_train, np.arange(12) % 3)


def test_load_npz_non_square_needs_image_shape(tmp_path):
    path = _save(tmp_path, **_arrays(shape=(12,)))
    with pytest.raises(ValueError, match=r"load_npz: image_shape must be given when "
                                         r"flatten=False and D is not a perfect square"):
        load_npz(path, flatten=False)
    (x, _), _ = load_npz(path, flatten=False, image_shape=(3, 2, 2))
    assert x.shape == (12, 3, 2, 2)
    with pytest.raises(ValueError, match=r"image_shape must be a shape with 12 elements"):
        load_npz(path, flatten=False, image_shape=(1, 3, 3))


@pytest.mark.parametrize("missing", ["x_train", "t_train"])
def test_load_npz_missing_keys(tmp_path, missing):
    arrays = _arrays()
    del arrays[missing]
    with pytest.raises(ValueError, match=rf"load_npz: the keys of mine\.npz must be x_train, "
                                         rf"t_train.*'{missing}' is missing"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_test_images_without_labels(tmp_path):
    arrays = _arrays()
    del arrays["t_test"]
    with pytest.raises(ValueError, match=r"must be both x_test and t_test or neither"):
        load_npz(_save(tmp_path, **arrays))


@pytest.mark.parametrize("key", ["x_train", "x_test"])
def test_load_npz_nan_values(tmp_path, key):
    arrays = _arrays(dtype=np.float32)
    arrays[key][1, 5] = np.nan
    with pytest.raises(ValueError, match=rf"load_npz: {key} must be finite \(no NaN or Inf\); "
                                         rf"got {key}=1 non-finite values"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_labels_outside_class_range(tmp_path):
    arrays = _arrays()
    arrays["t_train"][0] = 10
    path = _save(tmp_path, **arrays)
    with pytest.raises(ValueError, match=r"load_npz: t_train must be class labels in \[0, 9\]; "
                                         r"got t_train=values in \[0, 10\]"):
        load_npz(path, num_classes=10)


def test_load_npz_test_labels_outside_training_classes(tmp_path):
    arrays = _arrays()
    arrays["t_test"][2] = 7
    with pytest.raises(ValueError, match=r"load_npz: t_test must be class labels in \[0, 2\]"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_negative_labels(tmp_path):
    arrays = _arrays()
    arrays["t_train"][3] = -1
    with pytest.raises(ValueError, match=r"t_train must be class labels in \[0, 2\]; got "
                                         r"t_train=values in \[-1, 2\]"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_non_integer_labels(tmp_path):
    arrays = _arrays()
    arrays["t_train"] = arrays["t_train"] + 0.5
    with pytest.raises(ValueError, match=r"t_train must be integer class labels"):
        load_npz(_save(tmp_path, **arrays))


@pytest.mark.parametrize(("x_key", "t_key"), [("x_train", "t_train"), ("x_test", "t_test")])
def test_load_npz_length_mismatch(tmp_path, x_key, t_key):
    arrays = _arrays()
    arrays[t_key] = arrays[t_key][:-1]
    n = len(arrays[x_key])
    with pytest.raises(ValueError, match=rf"load_npz: len\({t_key}\) must be equal to "
                                         rf"len\({x_key}\) = {n}; got len\({t_key}\)={n - 1}"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_wrong_image_rank(tmp_path):
    arrays = _arrays()
    arrays["x_train"] = arrays["x_train"].reshape(-1)[:12]
    with pytest.raises(ValueError, match=r"x_train\.ndim must be 2 \(N, D\), 3 \(N, H, W\) or 4"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_test_shape_must_match_train(tmp_path):
    arrays = _arrays()
    arrays["x_test"] = arrays["x_test"][:, :100]
    with pytest.raises(ValueError, match=r"x_test\.shape\[1:\] must be equal to x_train"):
        load_npz(_save(tmp_path, **arrays))


def test_load_npz_object_array_is_rejected_not_unpickled(tmp_path):
    arrays = _arrays()
    arrays["x_train"] = np.array([{"boom": 1}] * 12, dtype=object)
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"load_npz: the arrays of .*mine\.npz must be numeric "
                                         r"arrays \(no Python objects\).*never unpickles"):
        load_npz(path)


def test_load_npz_not_a_zip(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match=r"load_npz: path must be a readable \.npz file"):
        load_npz(path)


def test_load_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_npz: path must be an existing \.npz file"):
        load_npz(tmp_path / "nope.npz")


def _write_csv(path, rows, header=None):
    lines = [header] if header else []
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_csv_with_header_and_test_file(tmp_path):
    rows = [[k % 3, *([k * 10] * 4)] for k in range(9)]
    train = _write_csv(tmp_path / "train.csv", rows, header="label,p1,p2,p3,p4")
    test = _write_csv(tmp_path / "test.csv", rows[:3])
    loaded = load_csv(train, test_path=test, flatten=False)
    (x_train, t_train), (x_test, t_test) = loaded
    assert x_train.shape == (9, 1, 2, 2) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train[2, 0, 0, 0], 20 / 255, rtol=1e-6)
    assert t_train.tolist() == [0, 1, 2] * 3 and x_test.shape == (3, 1, 2, 2)
    (x_raw, _), _ = load_csv(train, normalize=False)
    assert x_raw.dtype == np.uint8 and x_raw.shape == (9, 4)


def test_load_csv_float_pixels_kept(tmp_path):
    path = _write_csv(tmp_path / "f.csv", [[0, 0.5, -1.25], [1, 2.0, 3.0]])
    (x, t), _ = load_csv(path, one_hot_label=True)
    np.testing.assert_array_equal(x, np.array([[0.5, -1.25], [2.0, 3.0]], np.float32))
    assert t.shape == (2, 2)


def test_load_csv_ragged_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("0,1,2\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"load_csv: the rows of r\.csv must be label,pixel"):
        load_csv(path)


def test_load_csv_nan_pixels(tmp_path):
    path = _write_csv(tmp_path / "n.csv", [[0, 1, "nan"], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"the pixels of n\.csv must be finite"):
        load_csv(path)


def test_load_csv_non_integer_label(tmp_path):
    path = _write_csv(tmp_path / "l.csv", [[0.5, 1, 2]])
    with pytest.raises(ValueError, match=r"load_csv: labels must be integer class labels"):
        load_csv(path)


def test_load_csv_label_out_of_range(tmp_path):
    path = _write_csv(tmp_path / "l.csv", [[4, 1, 2], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"t_train must be class labels in \[0, 2\]"):
        load_csv(path, num_classes=3)


def test_load_csv_too_few_columns(tmp_path):
    path = _write_csv(tmp_path / "c.csv", [[1], [2]])
    with pytest.raises(ValueError, match=r"the table of c\.csv must be at least one row"):
        load_csv(path)


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_csv: path must be an existing \.csv"):
        load_csv(tmp_path / "none.csv")


def test_load_dataset_dispatch(tmp_path, capsys):
    assert load_dataset("mnist-sample").info.name == "mnist-sample"
    assert load_dataset("mnist").info.fallback
    assert "bundled MNIST sample" in capsys.readouterr().err
    npz = _save(tmp_path, **_arrays())
    assert load_dataset(npz).info.source == "file"
    csv = _write_csv(tmp_path / "d.csv", [[0, 1, 2, 3, 4]])
    assert load_dataset(str(csv), normalize=False)[0][0].shape == (1, 4)


def test_load_dataset_mnist_strict():
    with pytest.raises(FileNotFoundError, match=r"load_mnist: .*missing="):
        load_dataset("mnist", strict=True)


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"load_dataset: name must be one of the known names; "
                                         r"got name='mnits'. did you mean 'mnist'"):
        load_dataset("mnits")
