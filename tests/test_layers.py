"""Contract suite over every layer: gradient check, dtype, and the book's fixes."""

import numpy as np
import pytest

from groundup.conv import Convolution, Pooling
from groundup.layers import (
    Affine,
    BatchNormalization,
    Dropout,
    Flatten,
    LeakyRelu,
    MSELoss,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
    activation,
)
from groundup.numerical import numerical_gradient, relative_error

TOL = 1e-6


def away_from_zero(rng, shape, dtype):
    """Values with |x| in [0.1, 1]: no ReLU kink within the finite-difference step."""
    x = rng.uniform(0.1, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype(dtype)


def make_layer(kind, dtype, rng):
    """A small instance of each layer and a matching input."""
    def arr(*shape):
        return rng.normal(size=shape).astype(dtype)

    if kind == "affine":
        return Affine(arr(6, 4), arr(4)), arr(5, 6)
    if kind == "affine_4d_input":
        return Affine(arr(12, 3), arr(3)), arr(4, 3, 2, 2)
    if kind == "relu":
        return Relu(), away_from_zero(rng, (4, 5), dtype)
    if kind == "leaky_relu":
        return LeakyRelu(0.1), away_from_zero(rng, (4, 5), dtype)
    if kind == "sigmoid":
        return Sigmoid(), arr(4, 5)
    if kind == "tanh":
        return Tanh(), arr(4, 5)
    if kind == "dropout_book":
        return Dropout(0.3, inverted=False, rng=np.random.default_rng(1)), arr(6, 5)
    if kind == "dropout_inverted":
        return Dropout(0.3, inverted=True, rng=np.random.default_rng(1)), arr(6, 5)
    if kind == "batchnorm":
        return BatchNormalization(1 + 0.1 * arr(5), arr(5)), arr(6, 5)
    if kind == "batchnorm_conv":
        return BatchNormalization(1 + 0.1 * arr(3), arr(3)), arr(4, 3, 3, 2)
    if kind == "flatten":
        return Flatten(), arr(4, 2, 3, 3)
    if kind == "conv":
        return Convolution(arr(3, 2, 3, 3), arr(3), stride=1, pad=1), arr(4, 2, 5, 5)
    if kind == "conv_stride2":
        return Convolution(arr(2, 2, 3, 3), arr(2), stride=2, pad=0), arr(4, 2, 7, 7)
    if kind == "pool_max":
        return Pooling(2, 2, stride=2), arr(4, 2, 4, 4)
    if kind == "pool_max_pad":
        return Pooling(3, 3, stride=2, pad=1), arr(4, 2, 5, 5)
    if kind == "pool_avg":
        return Pooling(2, 2, stride=2, mode="avg"), arr(4, 2, 4, 4)
    raise AssertionError(kind)


LAYERS = ["affine", "affine_4d_input", "relu", "leaky_relu", "sigmoid", "tanh", "dropout_book",
          "dropout_inverted", "batchnorm", "batchnorm_conv", "flatten", "conv", "conv_stride2",
          "pool_max", "pool_max_pad", "pool_avg"]


@pytest.mark.parametrize("kind", LAYERS)
def test_layer_gradient_check_float64(kind):
    rng = np.random.default_rng(42)
    layer, x = make_layer(kind, np.float64, rng)
    if hasattr(layer, "hold_mask"):
        layer.hold_mask = True
    out = layer.forward(x, train_flg=True)
    G = rng.normal(size=out.shape)  # random upstream gradient, not a plain sum

    def f(_):
        return float(np.sum(layer.forward(x, train_flg=True) * G))

    layer.forward(x, train_flg=True)
    dx = layer.backward(G)
    analytic = {"x": dx, **{name: getattr(layer, "d" + name) for name in layer.param_names}}
    arrays = {"x": x, **layer.params}
    for name, array in arrays.items():
        numeric = numerical_gradient(f, array, h=1e-5)
        err = relative_error(analytic[name], numeric).max()
        assert err < TOL, f"{kind}: {name} relative error {err:.2e}"


@pytest.mark.parametrize("kind", LAYERS)
def test_layer_keeps_float32(kind):
    rng = np.random.default_rng(0)
    layer, x = make_layer(kind, np.float32, rng)
    out = layer.forward(x, train_flg=True)
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32
    assert dx.shape == x.shape
    for name in layer.param_names:
        assert getattr(layer, "d" + name).dtype == np.float32, name
    for name, value in layer.state.items():
        assert value.dtype == np.float32, name
    assert layer.forward(x, train_flg=False).dtype == np.float32


@pytest.mark.parametrize("loss_kind", ["softmax_labels", "softmax_one_hot", "mse", "mse_labels"])
def test_loss_layer_gradient_check(loss_kind):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    one_hot = np.eye(4)[labels]
    layer, t = {
        "softmax_labels": (SoftmaxWithLoss(), labels),
        "softmax_one_hot": (SoftmaxWithLoss(), one_hot),
        "mse": (MSELoss(), rng.normal(size=(5, 4))),
        "mse_labels": (MSELoss(), labels),
    }[loss_kind]
    g = 0.7  # a non-unit upstream gradient
    layer.forward(x, t)
    dx = layer.backward(g)
    numeric = numerical_gradient(lambda _: g * layer.forward(x, t), x, h=1e-5)
    assert relative_error(dx, numeric).max() < TOL


@pytest.mark.parametrize("layer_cls", [SoftmaxWithLoss, MSELoss])
def test_loss_layers_keep_float32(layer_cls):
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    layer = layer_cls()
    layer.forward(x, np.array([0, 1, 3]))
    assert layer.backward(1).dtype == np.float32


def test_softmax_with_loss_matches_cross_entropy():
    x = np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.5]])
    t = np.array([2, 0])
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    want = -np.mean(np.log(p[[0, 1], t]))
    assert SoftmaxWithLoss().forward(x, t) == pytest.approx(want, rel=1e-12)


def test_relu_backward_does_not_modify_its_argument():
    layer = Relu()
    layer.forward(np.array([[-1.0, 2.0]]))
    dout = np.array([[5.0, 6.0]])
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dout, [[5.0, 6.0]])
    np.testing.assert_array_equal(dx, [[0.0, 6.0]])


def test_dropout_book_convention_scales_at_test_time():
    x = np.ones((1000, 100), dtype=np.float32)
    layer = Dropout(0.2, inverted=False, rng=np.random.default_rng(0))
    train = layer.forward(x, train_flg=True)
    assert set(np.unique(train)) == {0.0, 1.0}
    assert train.mean() == pytest.approx(0.8, abs=0.01)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), 0.8)


def test_dropout_inverted_scales_at_train_time():
    x = np.ones((1000, 100), dtype=np.float32)
    layer = Dropout(0.2, inverted=True, rng=np.random.default_rng(0))
    train = layer.forward(x, train_flg=True)
    np.testing.assert_allclose(np.unique(train), [0.0, 1.25])
    assert train.mean() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_array_equal(layer.forward(x, train_flg=False), x)


def test_dropout_zero_ratio_keeps_everything():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Dropout(0.0, rng=np.random.default_rng(0)).forward(x), x)


def test_batchnorm_on_conv_output_is_per_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[[[[3.0]], [[-2.0]]]], scale=[[[[2.0]], [[0.5]]]], size=(8, 2, 4, 4))
    layer = BatchNormalization(np.ones(2), np.zeros(2))
    out = layer.forward(x, train_flg=True)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert layer.running_mean.shape == (2,)


def test_batchnorm_running_statistics_and_eval_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=5.0, scale=3.0, size=(64, 3))
    torch_style = BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9, eps=1e-5,
                                     unbiased_running_var=True)
    torch_style.forward(x)
    np.testing.assert_allclose(torch_style.running_mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(torch_style.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1))
    book = BatchNormalization(np.ones(3), np.zeros(3))
    book.forward(x)
    np.testing.assert_allclose(book.running_var, 0.9 + 0.1 * x.var(axis=0))
    book.running_mean[...] = 5.0
    book.running_var[...] = 9.0
    np.testing.assert_allclose(book.forward(np.full((1, 3), 8.0), train_flg=False),
                               1.0 / np.sqrt(1 + 1e-6 / 9.0) * np.ones((1, 3)), rtol=1e-12)


def test_activation_lookup_and_unknown_name():
    assert isinstance(activation("ReLU"), Relu)
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        activation("sigmoud")


def test_affine_rejects_wrong_input_width():
    layer = Affine(np.zeros((4, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"Affine: x.shape must be \(N, 4\)"):
        layer.forward(np.zeros((3, 5)))


def test_affine_rejects_mismatched_bias():
    with pytest.raises(ValueError, match="Affine: b.shape must be"):
        Affine(np.zeros((4, 2)), np.zeros(3))


def test_backward_before_forward_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="before forward"):
        Affine(np.zeros((4, 2)), np.zeros(2)).backward(np.zeros((1, 2)))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"Dropout: dropout_ratio must be in \[0, 1\)"):
        Dropout(ratio)


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match="BatchNormalization: x.ndim must be 2"):
        BatchNormalization(np.ones(3), np.zeros(3)).forward(np.zeros((2, 3, 4)))


def test_softmax_with_loss_rejects_bad_labels():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"t must be class labels in \[0, 2\]"):
        SoftmaxWithLoss().forward(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="len\\(t\\) must be equal to the batch size 2"):
        SoftmaxWithLoss().forward(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"t.shape\[1\] must be 3 \(one-hot width\)"):
        SoftmaxWithLoss().forward(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="t must be finite"):
        SoftmaxWithLoss().forward(x, np.array([0.0, np.nan]))
