"""Array-level helpers shared by every loader: one-hot labels, image formatting,
shuffling (plain and stratified) and the (stratified) train/validation split."""

from __future__ import annotations

import numpy as np

from groundup._checks import check_array, check_number, type_error, value_error


def _as_rng(owner: str, rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise type_error(owner, "rng", "a numpy.random.Generator or an int seed", rng,
                     "pass numpy.random.default_rng(seed) or the seed itself.")


def class_indices(owner: str, t: np.ndarray, arg: str = "t") -> np.ndarray:
    """Class indices from labels given as indices (N,) or one-hot/probabilities (N, C)."""
    check_array(owner, arg, t, ndim=(1, 2))
    if t.ndim == 2:
        return t.argmax(axis=1)
    if t.dtype.kind == "f" and not np.array_equal(t, np.round(t)):
        raise value_error(owner, arg, "integer class labels", "=non-integer values")
    if t.size and t.min() < 0:
        raise value_error(owner, arg, "class labels >= 0", f"=min {t.min()}")
    return t.astype(np.intp, copy=False)


def to_one_hot(t: np.ndarray, num_classes: int | None = None,
               dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot encode class labels.

    ``y[i, k] = 1 if t[i] == k else 0``.

    Args:
        t: class labels, integer-valued, shape (N,).
        num_classes: the width C; by default ``t.max() + 1``.
        dtype: of the result; float32 by default (the book's one-hot is float64; groundup
            trains in float32).

    Returns:
        Array of shape (N, C).

    Raises:
        ValueError: labels not 1-D, negative, non-integer, or >= ``num_classes``.
    """
    owner = "to_one_hot"
    check_array(owner, "t", t, ndim=1)
    labels = class_indices(owner, t)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    check_number(owner, "num_classes", num_classes, low=1, integer=True)
    if labels.size and labels.max() >= num_classes:
        raise value_error(owner, "t", f"class labels in [0, {num_classes - 1}]",
                          f"=values up to {labels.max()}", "pass a larger num_classes.")
    out = np.zeros((labels.shape[0], int(num_classes)), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def format_images(images: np.ndarray, *, normalize: bool, flatten: bool) -> np.ndarray:
    """Lay out (N, H, W) or (N, C, H, W) images the book's way.

    ``normalize``: uint8 pixels become float32 ``x / 255`` in [0, 1]; otherwise the stored
    dtype is kept. ``flatten``: shape (N, C*H*W); otherwise (N, C, H, W), with C = 1 for
    (N, H, W) input.
    """
    if images.ndim == 3:
        images = images[:, None, :, :]  # (N, 1, H, W)
    if flatten:
        images = images.reshape(images.shape[0], int(np.prod(images.shape[1:])))
    if normalize:
        if images.dtype == np.uint8:
            out = images.astype(np.float32)
            out *= np.float32(1.0 / 255.0)
            return out
        return images.astype(np.float32, copy=True)
    return np.array(images, copy=True)


def format_labels(labels: np.ndarray, *, one_hot_label: bool, num_classes: int) -> np.ndarray:
    """uint8 class indices (N,), or float32 one-hot (N, num_classes)."""
    if one_hot_label:
        return to_one_hot(labels, num_classes)
    if labels.size and int(labels.max()) <= 255 and int(labels.min()) >= 0:
        return labels.astype(np.uint8)
    return labels.astype(np.int64)


def _check_pair(owner: str, x: np.ndarray, t: np.ndarray) -> None:
    check_array(owner, "x", x, finite=False)
    check_array(owner, "t", t, ndim=(1, 2), finite=False)
    if x.ndim == 0 or x.shape[0] != t.shape[0]:
        raise value_error(owner, "len(t)", f"equal to len(x) = {x.shape[0] if x.ndim else 0}",
                          f"={t.shape[0]}")


def shuffle_dataset(x: np.ndarray, t: np.ndarray,
                    rng: np.random.Generator | int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle examples and labels together: ``x[p], t[p]`` for a random permutation ``p``.

    Args:
        x: examples, any shape (N, ...).
        t: labels (N,) or (N, C).
        rng: a ``numpy.random.Generator``, or an int seed for a fresh one.

    Returns:
        Shuffled copies ``(x, t)``; the inputs are not changed.
    """
    owner = "shuffle_dataset"
    _check_pair(owner, x, t)
    perm = _as_rng(owner, rng).permutation(x.shape[0])
    return x[perm], t[perm]


def stratified_permutation(t: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """A random order of the examples in which every prefix keeps the class proportions.

    Each class's members are shuffled; the k-th of a class with n_c members gets the key
    ``(k + u) / n_c`` with u ~ U(0, 1), and the examples are sorted by key. So every
    prefix of length L holds ``L * n_c / N`` examples of class c to within one; with equal
    classes (C classes of n) the first ``C * m`` hold exactly m of each, in random order.

    Args:
        t: labels, class indices (N,) or one-hot (N, C).
        rng: a ``numpy.random.Generator``, or an int seed for a fresh one.

    Returns:
        A permutation of ``range(N)`` (intp).
    """
    owner = "stratified_permutation"
    labels = class_indices(owner, t)
    generator = _as_rng(owner, rng)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    key = np.empty(labels.shape[0], dtype=np.float64)
    for k, count in enumerate(counts):
        members = generator.permutation(np.flatnonzero(inverse == k))
        key[members] = (np.arange(count) + generator.random(count)) / count
    return np.argsort(key, kind="stable")


def _stratified_counts(counts: np.ndarray, n_val: int, val_fraction: float) -> np.ndarray:
    """Per-class validation counts summing to ``n_val``, each ``~ val_fraction * count``
    (largest-remainder rounding)."""
    ideal = counts * val_fraction
    take = np.floor(ideal).astype(np.int64)
    short = n_val - int(take.sum())
    if short > 0:
        # ties broken by class order via the stable sort
        order = np.argsort(-(ideal - take), kind="stable")
        take[order[:short]] += 1
    return np.minimum(take, counts)


def train_val_split(x: np.ndarray, t: np.ndarray, val_fraction: float, *, stratify: bool = True,
                    seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray],
                                            tuple[np.ndarray, np.ndarray]]:
    """Split off a validation set of ``round(val_fraction * N)`` examples.

    With ``stratify`` each class contributes ``~ val_fraction`` of its examples (largest-
    remainder rounding so the total is exact), so both parts keep the class proportions.
    Both parts come out in random order. The result depends only on the inputs and
    ``seed``, never on global random state.

    Args:
        x: examples (N, ...).
        t: labels, class indices (N,) or one-hot (N, C).
        val_fraction: in (0, 1).
        stratify: keep class proportions (default) or split uniformly at random.
        seed: seeds the permutation.

    Returns:
        ``(x_train, t_train), (x_val, t_val)``.

    Raises:
        ValueError: ``val_fraction`` outside (0, 1), a split leaving either part empty, or
            (with ``stratify``) a class that would get no validation example.
    """
    owner = "train_val_split"
    _check_pair(owner, x, t)
    check_number(owner, "val_fraction", val_fraction, low=0.0, high=1.0, low_open=True,
                 high_open=True)
    check_number(owner, "seed", seed, integer=True)
    n = x.shape[0]
    n_val = int(round(val_fraction * n))
    if n_val == 0 or n_val == n:
        raise value_error(owner, "val_fraction", f"large enough to leave both parts non-empty "
                          f"for N={n}", val_fraction)
    rng = np.random.default_rng(int(seed))
    if not stratify:
        perm = rng.permutation(n)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    else:
        labels = class_indices(owner, t)
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        take = _stratified_counts(counts, n_val, float(val_fraction))
        empty = np.flatnonzero(take == 0)
        if empty.size:
            c = classes[empty[0]]
            raise value_error(owner, f"the validation share of class {c}", "at least 1 example",
                              f"=0 (class {c} has {counts[empty[0]]} examples, "
                              f"val_fraction={val_fraction})",
                              "raise val_fraction, add examples of that class, or pass "
                              "stratify=False.")
        val_parts, train_parts = [], []
        for k in range(classes.size):
            members = rng.permutation(np.flatnonzero(inverse == k))
            val_parts.append(members[:take[k]])
            train_parts.append(members[take[k]:])
        val_idx = rng.permutation(np.concatenate(val_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    return (x[train_idx], t[train_idx]), (x[val_idx], t[val_idx])
