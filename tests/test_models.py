"""Contract suite over every network: gradient check, dtype, save/load, bad input."""

import contextlib

import numpy as np
import pytest

from groundup import io
from groundup.models import (
    DeepConvNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    Sequential,
    SimpleConvNet,
    TwoLayerNet,
)
from groundup.numerical import frozen_randomness, gradient_check, numerical_gradient
from groundup.regularizers import L1, L1L2, L2

TOL = 1e-6


def small_nets(dtype, convention="groundup"):
    """Small instances of every network, built so every gradient is well above noise."""
    common = {"rng": 7, "dtype": dtype, "convention": convention}
    seq = (Sequential((6,), **common)
           .add("dense", units=5, init="glorot_uniform", regularizer=L2(0.01))
           .add("tanh").add("batchnorm").add("dropout", dropout_ratio=0.2)
           .add("dense", units=4, init="lecun_normal", regularizer=L1L2(0.01, 0.02),
                bias_regularizer=L1(0.01))
           .add("leaky_relu", alpha=0.1).add("dense", units=3, init="he_uniform"))
    nets = {
        "sequential": (seq, (6,), 3),
        "two_layer_sigmoid": (TwoLayerNet(6, 5, 3, 0.5, **common), (6,), 3),
        "two_layer_relu": (TwoLayerNet(6, 5, 3, 0.5, activation="relu", **common), (6,), 3),
        "multi_layer": (MultiLayerNet(6, [5, 4], 3, weight_decay_lambda=0.1, **common), (6,), 3),
        "multi_layer_extend": (MultiLayerNetExtend(6, [5, 4], 3, weight_decay_lambda=0.1,
                                                   use_dropout=True, dropout_ration=0.2,
                                                   use_batchnorm=True, **common), (6,), 3),
        "multi_layer_extend_sigmoid": (MultiLayerNetExtend(
            6, [5], 3, activation="sigmoid", weight_init_std="xavier", use_batchnorm=True,
            **common), (6,), 3),
        "simple_convnet": (SimpleConvNet((1, 6, 6), {"filter_num": 3, "filter_size": 3},
                                         hidden_size=5, output_size=3, weight_init_std=0.3,
                                         **common), (1, 6, 6), 3),
        "deep_convnet": (DeepConvNet((1, 8, 8), *[{"filter_num": 2}] * 6, hidden_size=4,
                                     output_size=3, **common), (1, 8, 8), 3),
    }
    rng = np.random.default_rng(11)
    for model, _, _ in nets.values():
        for name, p in model.params.items():
            if name.startswith("b"):  # nonzero biases keep padded regions off the ReLU kink
                p[...] = 0.1 * rng.normal(size=p.shape)
    return nets


def bn_fed_biases(model):
    """Biases of layers feeding straight into batch norm: their true gradient is 0."""
    names, layers = [], list(model.layers.values())
    for layer, following in zip(layers, layers[1:], strict=False):
        if type(following).__name__ == "BatchNormalization" and "b" in layer.param_names:
            names += [k for k, v in model.params.items() if v is layer.b]
    return names


def check_gradients(model, x, t, coords=None):
    """Relative error < TOL for every parameter; BN-fed biases (gradient exactly 0, where a
    relative error only measures rounding noise) are checked in absolute terms."""
    errors = gradient_check(model, x, t, coords=coords)
    assert set(errors) == set(model.params)
    zero = bn_fed_biases(model)
    with frozen_randomness(model):
        grads = model.gradient(x, t)
        for name in zero:
            assert np.abs(grads[name]).max() < 1e-10, name
            numeric = numerical_gradient(lambda _: model.loss(x, t, train_flg=True),
                                         model.params[name], 1e-5)
            assert np.abs(numeric).max() < 1e-8, name
    rest = {k: v for k, v in errors.items() if k not in zero}
    worst = max(rest, key=rest.get)
    assert rest[worst] < TOL, f"{worst} relative error {rest[worst]:.2e}"


NETS = list(small_nets(np.float64))


def batch(shape, classes, n=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(dtype)
    t = np.arange(n) % classes
    return x, t


@pytest.mark.parametrize("name", NETS)
def test_network_gradient_check_elementwise(name):
    model, shape, classes = small_nets(np.float64)[name]
    x, t = batch(shape, classes)
    check_gradients(model, x, t)


@pytest.mark.parametrize("convention", ["groundup", "book"])
def test_network_gradient_check_one_hot_labels(convention):
    model, shape, classes = small_nets(np.float64, convention)["multi_layer_extend"]
    x, t = batch(shape, classes)
    check_gradients(model, x, np.eye(classes)[t])


BOOK_SIZE = {
    "two_layer": lambda: (TwoLayerNet(784, 50, 10, 0.1, rng=1, dtype=np.float64), (784,)),
    "multi_layer_extend": lambda: (MultiLayerNetExtend(
        784, [100] * 5, 10, use_batchnorm=True, use_dropout=True, dropout_ration=0.2,
        weight_decay_lambda=0.01, rng=1, dtype=np.float64), (784,)),
    "simple_convnet": lambda: (SimpleConvNet(weight_init_std="he_normal", rng=1,
                                             dtype=np.float64), (1, 28, 28)),
    "deep_convnet": lambda: (DeepConvNet(rng=1, dtype=np.float64), (1, 28, 28)),
}


@pytest.mark.parametrize("name", list(BOOK_SIZE))
def test_network_gradient_check_book_size_random_coordinates(name):
    model, shape = BOOK_SIZE[name]()
    x, t = batch(shape, 10, n=4)
    x = np.abs(x) * 0.5  # image-like non-negative input
    # thousands of forward passes of 4 images: products too small to share between BLAS
    # threads, which would only spin
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(1, user_api="blas")
    with limit:
        check_gradients(model, x, t, coords=200)


@pytest.mark.parametrize("name", NETS)
def test_network_keeps_float32(name):
    model, shape, classes = small_nets(np.float32)[name]
    x, t = batch(shape, classes, dtype=np.float32)
    grads = model.gradient(x, t)
    for key, g in grads.items():
        assert g.dtype == np.float32, key
        assert model.params[key].dtype == np.float32, key
    for key, s in model.state.items():
        assert s.dtype == np.float32, key
    assert model.predict(x).dtype == np.float32
    assert model.predict(x.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("name", NETS)
def test_params_are_the_layers_arrays(name):
    model, shape, classes = small_nets(np.float64)[name]
    x, t = batch(shape, classes)
    before = model.predict(x)
    for p in model.params.values():
        p *= 0.5  # in place, as optimizers do
    assert not np.allclose(model.predict(x), before)


@pytest.mark.parametrize("name", NETS)
def test_save_load_predictions_bit_identical(tmp_path, name):
    model, shape, classes = small_nets(np.float32)[name]
    x, t = batch(shape, classes, n=8, dtype=np.float32)
    for _ in range(3):  # train a little so BN running statistics move away from 0/1
        grads = model.gradient(x, t)
        for key in model.params:
            model.params[key] -= 0.1 * grads[key]
    path = io.save(model, tmp_path / "model.npz")
    loaded = io.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    for key in model.state:
        np.testing.assert_array_equal(loaded.state[key], model.state[key])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss(x, t) == model.loss(x, t)


def test_accuracy_with_labels_and_one_hot():
    model, shape, classes = small_nets(np.float64)["two_layer_relu"]
    x, t = batch(shape, classes, n=12)
    acc = model.accuracy(x, t)
    want = np.mean(model.predict(x).argmax(axis=1) == t)
    assert acc == want
    assert model.accuracy(x, np.eye(classes)[t]) == want
    assert model.accuracy(x, t, batch_size=5) == want


def test_gradient_keeps_the_loss_of_its_forward_pass():
    model, shape, classes = small_nets(np.float64)["two_layer_relu"]
    x, t = batch(shape, classes)
    model.gradient(x, t)
    assert model.last_loss == model.loss(x, t, train_flg=True)


def test_book_weight_decay_is_half_lambda_sum_of_squares():
    model = MultiLayerNet(4, [3], 2, weight_decay_lambda=0.1, rng=0, dtype=np.float64)
    plain = MultiLayerNet(4, [3], 2, rng=0, dtype=np.float64)
    x, t = batch((4,), 2)
    penalty = 0.5 * 0.1 * (np.sum(model.params["W1"] ** 2) + np.sum(model.params["W2"] ** 2))
    assert model.loss(x, t) == pytest.approx(plain.loss(x, t) + penalty, rel=1e-12)
    g, g0 = model.gradient(x, t), plain.gradient(x, t)
    np.testing.assert_allclose(g["W1"], g0["W1"] + 0.1 * model.params["W1"], rtol=1e-12)
    np.testing.assert_array_equal(g["b1"], g0["b1"])  # biases are not decayed


def test_parameter_names_follow_the_book():
    model = MultiLayerNetExtend(784, [100, 100], 10, use_batchnorm=True, rng=0)
    assert list(model.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                                  "W3", "b3"]
    assert list(model.state) == ["running_mean1", "running_var1", "running_mean2",
                                 "running_var2"]
    conv = SimpleConvNet(rng=0)
    assert {k: v.shape for k, v in conv.params.items()} == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10),
        "b3": (10,)}
    deep = DeepConvNet(rng=0)
    assert deep.params["W7"].shape == (64 * 4 * 4, 50)
    assert deep.params["W8"].shape == (50, 10)


def test_book_initializer_names_keep_book_meaning():
    n = 4000
    he = MultiLayerNet(n, [300], 10, weight_init_std="relu", rng=0, dtype=np.float64)
    xavier = MultiLayerNet(n, [300], 10, weight_init_std="xavier", rng=0, dtype=np.float64)
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / n), rel=0.01)
    assert xavier.params["W1"].std() == pytest.approx(np.sqrt(1 / n), rel=0.01)
    std = MultiLayerNet(n, [300], 10, weight_init_std=0.01, rng=0, dtype=np.float64)
    assert std.params["W1"].std() == pytest.approx(0.01, rel=0.01)


def test_same_seed_same_weights():
    a = MultiLayerNet(20, [10], 3, rng=5)
    b = MultiLayerNet(20, [10], 3, rng=5)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])


# ---- bad input ---------------------------------------------------------------------------

def test_wrong_input_shape_is_rejected():
    model = TwoLayerNet(784, 50, 10, rng=0)
    with pytest.raises(ValueError, match=r"TwoLayerNet: x.shape must be \(N, 784\)"):
        model.predict(np.zeros((2, 100), dtype=np.float32))
    conv = SimpleConvNet(rng=0)
    with pytest.raises(ValueError, match=r"SimpleConvNet: x.shape must be \(N, 1, 28, 28\)"):
        conv.predict(np.zeros((2, 784), dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("net", ["dense_first", "dense_zero_row", "sigmoid_first", "conv"])
def test_non_finite_input_is_rejected(bad, net):
    if net == "conv":
        model = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3}, hidden_size=3,
                              output_size=2, rng=0)
        x = np.zeros((3, 1, 6, 6), dtype=np.float32)
        x[1, 0, 2, 3] = bad
    else:
        model = (Sequential((4,), rng=0).add("sigmoid").add("dense", units=2)
                 if net == "sigmoid_first" else TwoLayerNet(4, 3, 2, rng=0))
        if net == "dense_zero_row":
            model.params["W1"][1] = 0  # the bad element meets only zero weights: inf·0 = NaN
        x = np.full((3, 4), 1e30, dtype=np.float32)  # large, finite values pass
        x[1, 1] = bad
    with pytest.raises(ValueError, match="x must be finite"):
        model.predict(x)
    with pytest.raises(ValueError, match="x must be finite"):
        model.gradient(x, np.array([0, 1, 0]))
    x[1] = 0
    model.predict(x)


def test_labels_out_of_range_or_wrong_length_are_rejected():
    model = TwoLayerNet(4, 3, 2, rng=0)
    x = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"t must be class labels in \[0, 1\]"):
        model.loss(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="len\\(t\\) must be equal to the batch size 3"):
        model.accuracy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="one-hot width"):
        model.gradient(x, np.zeros((3, 5)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"activation": "sigmod"}, "did you mean 'sigmoid'"),
    ({"weight_init_std": "xavir"}, "did you mean 'xavier'"),
    ({"use_dropout": True, "dropout_ration": -0.5}, r"dropout_ratio must be in \[0, 1\)"),
    ({"weight_decay_lambda": -1.0}, r"weight_decay_lambda must be in \[0, inf\]"),
])
def test_bad_network_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiLayerNetExtend(4, [3], 2, **kwargs, rng=0)


def test_unknown_layer_kind_and_regularizer():
    with pytest.raises(ValueError, match="did you mean 'dense'"):
        Sequential((4,), rng=0).add("dens", units=3)
    with pytest.raises(ValueError, match="did you mean 'l2'"):
        Sequential((4,), rng=0).add("dense", units=3, regularizer="l22")
    with pytest.raises(TypeError, match="Sequential.add"):
        Sequential((4,), rng=0).add("dense", width=3)


def test_conv_on_flat_input_is_rejected():
    with pytest.raises(ValueError, match=r"input shape must be \(C, H, W\)"):
        Sequential((784,), rng=0).add("conv", filters=3, kernel_size=3)


def test_model_file_truncated(tmp_path):
    path = io.save(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        io.load(path)


def test_model_file_wrong_format_version(tmp_path):
    model = TwoLayerNet(4, 3, 2, rng=0)
    meta = {"format": io.MODEL_FORMAT, "format_version": 99, "model": model.get_config()}
    path = io.atomic_write_npz(tmp_path / "m.npz", io.model_arrays(model), meta)
    with pytest.raises(ValueError, match="format_version must be an int in \\[1, 1\\]; got "
                                         "format_version=99"):
        io.load(path)


class Boom:
    """Unpickling this would touch the marker file; it must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_model_file_with_pickled_object_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = Boom(marker)
    with open(path, "wb") as fh:
        np.savez(fh, __meta__=obj)  # the file under test deliberately holds a pickle
    with pytest.raises(ValueError, match="free of pickled objects"):
        io.load(path)
    assert not marker.exists()


def test_model_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load(tmp_path / "nope.npz")


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    model = TwoLayerNet(4, 3, 2, rng=0)
    target = tmp_path / "m.npz"
    io.save(model, target)
    first = target.read_bytes()

    class Unsaveable(TwoLayerNet):
        def get_config(self):
            return {"class": "TwoLayerNet", "args": {"bad": object()}}  # not JSON-able

    with pytest.raises(TypeError):
        io.save(Unsaveable(4, 3, 2, rng=0), target)
    assert target.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_save_where_a_file_blocks_the_directory(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ValueError, match="save: "):
        io.save(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "blocker" / "m.npz")


def test_model_files_that_spell_dropout_ratio_ratio_still_load(tmp_path):
    model = Sequential((4,), rng=0).add("dense", units=3).add("dropout", dropout_ratio=0.3)
    config = model.get_config()
    assert config["args"]["layers"][1] == {"kind": "dropout", "dropout_ratio": 0.3}
    config["args"]["layers"][1] = {"kind": "dropout", "ratio": 0.3}  # as files were written
    meta = {"format": io.MODEL_FORMAT, "format_version": io.FORMAT_VERSION, "model": config}
    path = io.atomic_write_npz(tmp_path / "m.npz", io.model_arrays(model), meta)
    loaded = io.load(path)
    assert loaded.layers["Dropout1"].dropout_ratio == 0.3
    assert loaded.get_config() == model.get_config()
    with pytest.raises(TypeError, match="Sequential.add"):
        Sequential((4,), rng=0).add("dropout", ratio=0.3)  # one spelling in the API


@pytest.mark.parametrize("name", list(small_nets(np.float32)))
def test_an_empty_batch_predicts_no_rows(name):
    model, shape, classes = small_nets(np.float32)[name]
    x = np.zeros((0, *shape), dtype=np.float32)
    assert model.predict(x).shape == (0, classes)
    assert model.accuracy(x, np.zeros(0, dtype=int)) == 0.0
    if any(type(layer).__name__ == "BatchNormalization" for layer in model.layers.values()):
        with pytest.raises(ValueError, match="batch size must be at least 1 in training"):
            model.predict(x, train_flg=True)
    else:
        assert model.predict(x, train_flg=True).shape == (0, classes)
