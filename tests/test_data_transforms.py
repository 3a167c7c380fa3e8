"""to_one_hot, shuffle_dataset and train_val_split."""

from __future__ import annotations

import numpy as np
import pytest

from groundup.data import shuffle_dataset, to_one_hot, train_val_split


def test_to_one_hot_values_and_dtype():
    y = to_one_hot(np.array([2, 0, 1], dtype=np.uint8), 4)
    expected = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected)


def test_to_one_hot_infers_width_and_takes_dtype():
    y = to_one_hot(np.array([0, 3]), dtype=np.float64)
    assert y.shape == (2, 4) and y.dtype == np.float64


@pytest.mark.parametrize(("t", "num_classes", "error", "pattern"), [
    (np.array([0, 10]), 10, ValueError, r"to_one_hot: t must be class labels in \[0, 9\]"),
    (np.array([-1, 2]), 10, ValueError, r"to_one_hot: t must be class labels >= 0"),
    (np.array([0.5, 1.0]), 3, ValueError, r"to_one_hot: t must be integer class labels"),
    (np.zeros((2, 2), np.int64), 3, ValueError, r"to_one_hot: t\.ndim must be 1-D"),
    (np.array([0, 1]), 0, ValueError, r"to_one_hot: num_classes must be in \[1, inf\]"),
    ([0, 1], 3, TypeError, r"to_one_hot: t must be a numpy\.ndarray"),
])
def test_to_one_hot_rejects(t, num_classes, error, pattern):
    with pytest.raises(error, match=pattern):
        to_one_hot(t, num_classes)


@pytest.mark.parametrize("rng_kind", ["generator", "int"])
def test_shuffle_dataset_keeps_pairs(rng_kind):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    t = np.arange(10)
    rng = np.random.default_rng(3) if rng_kind == "generator" else 3
    xs, ts = shuffle_dataset(x, t, rng)
    np.testing.assert_array_equal(xs[:, 0] / 2, ts)
    assert not np.array_equal(ts, t)
    assert sorted(ts.tolist()) == list(range(10))
    np.testing.assert_array_equal(t, np.arange(10))


def test_shuffle_dataset_int_seed_equals_generator_with_that_seed():
    x = np.arange(50).reshape(25, 2)
    t = np.arange(25)
    a = shuffle_dataset(x, t, 7)
    b = shuffle_dataset(x, t, np.random.default_rng(7))
    np.testing.assert_array_equal(a[1], b[1])


def test_shuffle_dataset_4d_and_one_hot():
    x = np.arange(6 * 4, dtype=np.float32).reshape(6, 1, 2, 2)
    t = to_one_hot(np.arange(6) % 3, 3)
    xs, ts = shuffle_dataset(x, t, 0)
    assert xs.shape == x.shape and ts.shape == t.shape


def test_shuffle_dataset_rejects_bad_rng():
    with pytest.raises(TypeError, match=r"shuffle_dataset: rng must be a numpy\.random\.Generator "
                                        r"or an int seed"):
        shuffle_dataset(np.zeros((2, 1)), np.zeros(2), "seed")


def test_shuffle_dataset_rejects_length_mismatch():
    with pytest.raises(ValueError, match=r"shuffle_dataset: len\(t\) must be equal to len\(x\) = 3;"
                                         r" got len\(t\)=2"):
        shuffle_dataset(np.zeros((3, 1)), np.zeros(2), 0)


def _blobs(per_class=(50, 30, 20)):
    t = np.concatenate([np.full(n, k) for k, n in enumerate(per_class)])
    x = np.arange(t.size, dtype=np.float32)[:, None]
    return x, t


def test_train_val_split_stratified_counts_and_disjoint():
    x, t = _blobs()
    (x_tr, t_tr), (x_val, t_val) = train_val_split(x, t, 0.2)
    assert np.bincount(t_val).tolist() == [10, 6, 4]
    assert np.bincount(t_tr).tolist() == [40, 24, 16]
    assert sorted(np.concatenate([x_tr[:, 0], x_val[:, 0]]).tolist()) == x[:, 0].tolist()
    np.testing.assert_array_equal(t[x_val[:, 0].astype(int)], t_val)


def test_train_val_split_exact_total_with_rounding():
    x, t = _blobs((7, 7, 7))
    (_, t_tr), (_, t_val) = train_val_split(x, t, 0.3)
    assert t_val.size == 6 and t_tr.size == 15  # round(0.3 * 21) = 6
    assert set(t_val.tolist()) == {0, 1, 2}


def test_train_val_split_is_deterministic_per_seed_and_shuffled():
    x, t = _blobs()
    a = train_val_split(x, t, 0.25, seed=4)
    b = train_val_split(x, t, 0.25, seed=4)
    c = train_val_split(x, t, 0.25, seed=5)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert not np.array_equal(a[1][0], c[1][0])
    assert len(set(a[0][1][:10].tolist())) > 1  # classes interleaved, not in blocks


def test_train_val_split_one_hot_labels_stratify():
    x, t = _blobs()
    (_, t_tr), (_, t_val) = train_val_split(x, to_one_hot(t, 3), 0.1)
    assert t_val.shape == (10, 3) and t_val.sum(axis=0).tolist() == [5, 3, 2]
    assert t_tr.dtype == np.float32


def test_train_val_split_unstratified():
    x, t = _blobs()
    (x_tr, _), (x_val, _) = train_val_split(x, t, 0.5, stratify=False, seed=1)
    assert x_tr.shape == (50, 1) and x_val.shape == (50, 1)


@pytest.mark.parametrize("val_fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_val_split_rejects_fraction_outside_open_interval(val_fraction):
    x, t = _blobs()
    with pytest.raises(ValueError, match=r"train_val_split: val_fraction must be in \(0, 1\); "
                                         rf"got val_fraction={val_fraction}"):
        train_val_split(x, t, val_fraction)


def test_train_val_split_rejects_split_leaving_a_part_empty():
    x, t = _blobs((2, 2))
    with pytest.raises(ValueError, match=r"val_fraction must be large enough to leave both parts "
                                         r"non-empty for N=4"):
        train_val_split(x, t, 0.1)


def test_train_val_split_rejects_class_without_validation_sample():
    x, t = _blobs((40, 40, 2))
    with pytest.raises(ValueError, match=r"train_val_split: the validation share of class 2 must "
                                         r"be at least 1 example; got .*class 2 has 2 examples.*"
                                         r"stratify=False"):
        train_val_split(x, t, 0.1)
    (_, _), (_, t_val) = train_val_split(x, t, 0.1, stratify=False)
    assert t_val.size == 8


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"seed": 1.5}, TypeError, r"train_val_split: seed must be an int"),
    ({"val_fraction": "0.2"}, TypeError, r"train_val_split: val_fraction must be a real number"),
])
def test_train_val_split_rejects_types(kwargs, error, pattern):
    x, t = _blobs()
    args = {"val_fraction": 0.2, **kwargs}
    with pytest.raises(error, match=pattern):
        train_val_split(x, t, **args)


def test_train_val_split_rejects_non_integer_labels():
    x, t = _blobs()
    with pytest.raises(ValueError, match=r"train_val_split: t must be integer class labels"):
        train_val_split(x, t + 0.5, 0.2)
