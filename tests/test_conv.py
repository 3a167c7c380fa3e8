"""im2col/col2im against loop references, and Convolution/Pooling gradients and fixes."""

import numpy as np
import pytest

from groundup.conv import Convolution, Pooling, col2im, conv2d_direct, im2col
from groundup.numerical import numerical_gradient, relative_error

TOL = 1e-6

# (N, C, H, W, FH, FW, stride, pad): square and not, strides that leave rows unused
GEOMETRIES = [
    (2, 1, 5, 5, 3, 3, 1, 0),
    (2, 3, 6, 5, 3, 2, 1, 1),
    (3, 2, 7, 7, 3, 3, 2, 0),
    (2, 2, 6, 7, 2, 3, 2, 1),
    (2, 1, 5, 6, 1, 1, 1, 0),
    (2, 2, 4, 4, 4, 4, 1, 2),
    (1, 2, 8, 8, 3, 3, 3, 1),
]


def out_size(size, window, stride, pad):
    return (size + 2 * pad - window) // stride + 1


def naive_im2col(x, fh, fw, stride, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = out_size(h, fh, stride, pad), out_size(w, fw, stride, pad)
    col = np.zeros((n * oh * ow, c * fh * fw), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for ch in range(c):
                    for p in range(fh):
                        for q in range(fw):
                            col[row, (ch * fh + p) * fw + q] = xp[b, ch, i * stride + p,
                                                                  j * stride + q]
    return col


def naive_col2im(col, shape, fh, fw, stride, pad):
    n, c, h, w = shape
    oh, ow = out_size(h, fh, stride, pad), out_size(w, fw, stride, pad)
    img = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=col.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for ch in range(c):
                    for p in range(fh):
                        for q in range(fw):
                            img[b, ch, i * stride + p, j * stride + q] += col[
                                row, (ch * fh + p) * fw + q]
    return img[:, :, pad:pad + h, pad:pad + w]


def naive_pool(x, ph, pw, stride, pad, mode):
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    oh, ow = out_size(x.shape[2], ph, stride, pad), out_size(x.shape[3], pw, stride, pad)
    out = np.zeros(x.shape[:2] + (oh, ow))
    reduce = np.max if mode == "max" else np.mean
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(xp[:, :, i * stride:i * stride + ph,
                                        j * stride:j * stride + pw], axis=(2, 3))
    return out


def distinct(rng, shape, offset=0.0):
    """Values 0.01 apart in random order: no max-pool tie within a finite-difference step."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * 0.01 - 0.005 * size + offset)


def grad_errors(layer, x, rng):
    """Max relative error of every parameter and of the input, for loss = Σ out · G."""
    out = layer.forward(x, train_flg=True)
    G = rng.normal(size=out.shape)
    analytic = {"x": layer.backward(G)}
    analytic.update({k: v.copy() for k, v in layer.grads.items()})

    def f(_):
        return float(np.sum(layer.forward(x, train_flg=True) * G))

    errors = {name: float(relative_error(analytic[name],
                                         numerical_gradient(f, param)).max())
              for name, param in layer.params.items()}
    errors["x"] = float(relative_error(analytic["x"], numerical_gradient(f, x)).max())
    return errors


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_matches_loop_reference(geometry):
    n, c, h, w, fh, fw, stride, pad = geometry
    x = np.random.default_rng(0).normal(size=(n, c, h, w))
    col = im2col(x, fh, fw, stride, pad)
    np.testing.assert_array_equal(col, naive_im2col(x, fh, fw, stride, pad))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_matches_loop_reference(geometry):
    n, c, h, w, fh, fw, stride, pad = geometry
    rows = n * out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad)
    col = np.random.default_rng(1).normal(size=(rows, c * fh * fw))
    img = col2im(col, (n, c, h, w), fh, fw, stride, pad)
    assert img.shape == (n, c, h, w)
    np.testing.assert_allclose(img, naive_col2im(col, (n, c, h, w), fh, fw, stride, pad),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(geometry):
    n, c, h, w, fh, fw, stride, pad = geometry
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, c, h, w))
    rows = n * out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad)
    col = rng.normal(size=(rows, c * fh * fw))
    lhs = np.sum(im2col(x, fh, fw, stride, pad) * col)
    rhs = np.sum(x * col2im(col, x.shape, fh, fw, stride, pad))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_im2col_reshapes_the_book_way_for_pooling():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    col = im2col(x, 2, 2, stride=2).reshape(-1, 4)  # rows (n, oh, ow, c), as the book uses
    out = col.max(axis=1).reshape(2, 2, 2, 3).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out, x[:, :, 1::2, 1::2])


def test_im2col_returns_a_new_writable_array():
    x = np.ones((2, 1, 3, 3), dtype=np.float32)
    col = im2col(x, 1, 1)
    col[0, 0] = 5.0
    assert x[0, 0, 0, 0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_and_col2im_keep_dtype(dtype):
    x = np.ones((2, 3, 5, 5), dtype=dtype)
    col = im2col(x, 3, 3, stride=2, pad=1)
    assert col.dtype == dtype
    assert col2im(col, x.shape, 3, 3, stride=2, pad=1).dtype == dtype


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_convolution_forward_matches_direct_convolution(stride, pad):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 7, 6))
    W = rng.normal(size=(4, 3, 3, 2))
    b = rng.normal(size=4)
    out = Convolution(W, b, stride, pad).forward(x)
    np.testing.assert_allclose(out, conv2d_direct(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)


def test_conv2d_direct_is_the_defining_sum():
    rng = np.random.default_rng(12)
    x, W, b = rng.normal(size=(2, 2, 5, 4)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    stride, pad = 2, 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = conv2d_direct(x, W, b, stride, pad)
    assert out.shape == (2, 3, 3, 3)
    for n, f, i, j in np.ndindex(out.shape):
        want = b[f] + sum(W[f, c, p, q] * xp[n, c, i * stride + p, j * stride + q]
                          for c, p, q in np.ndindex(W.shape[1:]))
        assert out[n, f, i, j] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_convolution_gradient_check_float64(stride, pad):
    rng = np.random.default_rng(4)
    layer = Convolution(rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3), stride, pad)
    errors = grad_errors(layer, rng.normal(size=(2, 2, 6, 5)), rng)
    assert set(errors) == {"W", "b", "x"}
    assert max(errors.values()) < TOL, errors


def test_convolution_without_input_grad_returns_none_and_same_param_grads():
    rng = np.random.default_rng(5)
    W, b, x = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), rng.normal(size=(2, 2, 5, 5))
    full = Convolution(W, b, pad=1)
    first = Convolution(W, b, pad=1)
    first.needs_input_grad = False
    dout = rng.normal(size=(2, 3, 5, 5))
    full.forward(x)
    first.forward(x)
    assert full.backward(dout) is not None
    assert first.backward(dout) is None
    np.testing.assert_array_equal(first.dW, full.dW)
    np.testing.assert_array_equal(first.db, full.db)


def test_convolution_accepts_any_dout_layout_and_leaves_it_untouched():
    rng = np.random.default_rng(6)
    layer = Convolution(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3))
    out = layer.forward(rng.normal(size=(2, 2, 5, 5)))
    dout = rng.normal(size=out.shape)
    saved = dout.copy()
    dx_c = layer.backward(dout)
    dW_c = layer.dW.copy()
    dx_f = layer.backward(np.asfortranarray(dout))
    np.testing.assert_array_equal(dout, saved)
    np.testing.assert_allclose(dx_f, dx_c, rtol=1e-12)
    np.testing.assert_allclose(layer.dW, dW_c, rtol=1e-12)


POOLS = [  # (pool_h, pool_w, stride, pad, H, W)
    (2, 2, 2, 0, 4, 6),  # tiles the input: reshape path
    (2, 2, 1, 0, 4, 5),
    (3, 3, 2, 1, 5, 5),
    (2, 3, 1, 1, 4, 5),
    (3, 3, 3, 1, 7, 7),
    (2, 2, 2, 0, 5, 5),  # last row/column unused
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool", POOLS)
def test_pooling_forward_matches_loop_reference(pool, mode):
    ph, pw, stride, pad, h, w = pool
    x = distinct(np.random.default_rng(7), (2, 3, h, w), offset=-0.5)
    out = Pooling(ph, pw, stride, pad, mode=mode).forward(x)
    np.testing.assert_allclose(out, naive_pool(x, ph, pw, stride, pad, mode), rtol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("offset", [0.0, -5.0])
def test_pooling_gradient_check_float64(pool, mode, offset):
    ph, pw, stride, pad, h, w = pool
    rng = np.random.default_rng(8)
    x = distinct(rng, (2, 2, h, w), offset=offset)
    errors = grad_errors(Pooling(ph, pw, stride, pad, mode=mode), x, rng)
    assert errors["x"] < TOL, errors


@pytest.mark.parametrize("pool", [(2, 2, 2, 0), (3, 3, 1, 1)])
def test_max_pooling_ties_send_the_gradient_to_the_first_element(pool):
    ph, pw, stride, pad = pool
    layer = Pooling(ph, pw, stride, pad)
    x = np.full((2, 1, 4, 4), 3.0)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert dx.sum() == out.size
    if stride == ph:
        np.testing.assert_array_equal(dx[:, :, ::2, ::2], 1.0)
        assert np.count_nonzero(dx) == out.size


def test_max_pooling_pads_with_minus_infinity():
    x = -1.0 - np.arange(2 * 2 * 4 * 4, dtype=np.float32).reshape(2, 2, 4, 4)
    out = Pooling(3, 3, stride=1, pad=1).forward(x)
    assert (out < 0).all()
    assert out[0, 0, 0, 0] == max(x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1])
    np.testing.assert_array_equal(out, naive_pool(x, 3, 3, 1, 1, "max"))


def test_average_pooling_counts_padding_in_the_mean():
    out = Pooling(3, 3, stride=1, pad=1, mode="average").forward(np.ones((1, 1, 3, 3)))
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert out[0, 0, 1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("pool", [(2, 2, 2, 0), (3, 3, 2, 1)])
def test_average_pooling_of_integers_is_not_truncated(pool):
    x = np.arange(2 * 4 * 4).reshape(1, 2, 4, 4)
    layer = Pooling(*pool, mode="avg")
    np.testing.assert_allclose(layer.forward(x), layer.forward(x.astype(np.float64)))
    assert layer.forward(x).dtype == np.float64


@pytest.mark.parametrize("layer_kind", ["conv", "conv_pad_stride", "max_tiled", "max_pad",
                                        "avg_tiled", "avg_pad"])
def test_float32_in_float32_out(layer_kind):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    layer = {
        "conv": lambda: Convolution(rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                                    np.zeros(4, dtype=np.float32)),
        "conv_pad_stride": lambda: Convolution(rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                                               np.zeros(4, dtype=np.float32), stride=2, pad=1),
        "max_tiled": lambda: Pooling(2, 2, 2),
        "max_pad": lambda: Pooling(3, 3, 2, 1),
        "avg_tiled": lambda: Pooling(2, 2, 2, mode="avg"),
        "avg_pad": lambda: Pooling(3, 3, 2, 1, mode="avg"),
    }[layer_kind]()
    out = layer.forward(x)
    dx = layer.backward(rng.normal(size=out.shape).astype(np.float32))
    assert out.dtype == np.float32 and dx.dtype == np.float32
    for grad in layer.grads.values():
        assert grad.dtype == np.float32


def test_get_config_round_trips():
    rng = np.random.default_rng(11)
    conv = Convolution(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), stride=2, pad=1)
    assert conv.get_config() == {"stride": 2, "pad": 1}
    pool = Pooling(3, 2, stride=2, pad=1, mode="average")
    config = pool.get_config()
    assert config == {"pool_h": 3, "pool_w": 2, "stride": 2, "pad": 1, "mode": "avg"}
    assert Pooling(**config).get_config() == config


def test_pooling_stride_defaults_to_one_and_none_means_the_window():
    assert Pooling(2, 2).stride == 1
    assert Pooling(3, 3, stride=None).stride == 3


def test_convolution_reports_output_shape_in_channels_first_order():
    conv = Convolution(np.zeros((5, 1, 5, 5), dtype=np.float32), np.zeros(5, dtype=np.float32))
    out = conv.forward(np.zeros((3, 1, 28, 28), dtype=np.float32))
    assert out.shape == (3, 5, 24, 24)


W4 = np.zeros((2, 3, 3, 3))
B2 = np.zeros(2)
X4 = np.zeros((2, 3, 5, 5))


@pytest.mark.parametrize("call,error,match", [
    (lambda: im2col(np.zeros((3, 5, 5)), 3, 3), ValueError, r"input_data\.ndim must be 4-D"),
    (lambda: im2col([[1.0]], 3, 3), TypeError, r"input_data must be a numpy\.ndarray"),
    (lambda: im2col(X4, 0, 3), ValueError, r"filter_h must be in \[1, inf\]"),
    (lambda: im2col(X4, 3, 2.5), TypeError, r"filter_w must be an int"),
    (lambda: im2col(X4, 3, 3, stride=0), ValueError, r"stride must be in \[1, inf\]"),
    (lambda: im2col(X4, 3, 3, pad=-1), ValueError, r"pad must be in \[0, inf\]"),
    (lambda: im2col(X4, 7, 3), ValueError, r"output height must be at least 1.*= -1\."),
    (lambda: im2col(X4, 3, 8, pad=1), ValueError, r"output width must be at least 1"),
    (lambda: col2im(np.zeros((18, 26)), (2, 3, 5, 5), 3, 3), ValueError,
     r"col\.shape must be \(18, 27\)"),
    (lambda: col2im(np.zeros((18, 27)), (2, 3, 5), 3, 3), ValueError,
     r"input_shape must be 4 positive ints"),
    (lambda: col2im(np.zeros(27), (2, 3, 5, 5), 3, 3), ValueError, r"col\.ndim must be 2-D"),
    (lambda: Convolution(np.zeros((2, 3, 3)), B2), ValueError, r"W\.ndim must be 4-D"),
    (lambda: Convolution(W4, np.zeros(3)), ValueError, r"b\.shape must be \(2,\)"),
    (lambda: Convolution(W4, B2, stride=0), ValueError, r"Convolution: stride must be in"),
    (lambda: Convolution(W4, B2, pad=-2), ValueError, r"Convolution: pad must be in"),
    (lambda: Convolution(W4, B2).forward(np.zeros((2, 4, 5, 5))), ValueError,
     r"x\.shape must be \(N, 3, H, W\) to match W\.shape\[1\]"),
    (lambda: Convolution(W4, B2).forward(np.zeros((3, 5, 5))), ValueError,
     r"Convolution: x\.ndim must be 4-D"),
    (lambda: Convolution(W4, B2).forward(np.zeros((2, 3, 2, 5))), ValueError,
     r"Convolution: output height must be at least 1"),
    (lambda: Convolution(W4, B2).backward(np.zeros((2, 2, 3, 3))), RuntimeError,
     r"backward called before forward"),
    (lambda: Pooling(0, 2), ValueError, r"Pooling: pool_h must be in \[1, inf\]"),
    (lambda: Pooling(2, 2, stride=0), ValueError, r"Pooling: stride must be in"),
    (lambda: Pooling(2, 2, pad=-1), ValueError, r"Pooling: pad must be in"),
    (lambda: Pooling(2, 3, stride=None), ValueError, r"stride must be an int when pool_h"),
    (lambda: Pooling(2, 2, mode="maxx"), ValueError, r"mode must be one of.*did you mean 'max'"),
    (lambda: Pooling(2, 2, mode=1), TypeError, r"Pooling: mode must be a str"),
    (lambda: Pooling(6, 6).forward(X4), ValueError, r"Pooling: output height must be at least"),
    (lambda: Pooling(2, 2).forward(np.zeros((5, 5))), ValueError, r"Pooling: x\.ndim must be"),
    (lambda: Pooling(2, 2).backward(np.zeros((2, 3, 4, 4))), RuntimeError,
     r"Pooling: backward called before forward"),
])
def test_validation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("layer", [Convolution(W4, B2), Pooling(2, 2)])
def test_backward_rejects_dout_of_the_wrong_shape(layer):
    layer.forward(X4)
    with pytest.raises(ValueError, match=r"dout\.shape must be .*forward output's shape"):
        layer.backward(np.zeros((2, 2, 1, 1)))
