import numpy as np
import pytest

from groundup.book import optimizers as book

NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
CLASSES = {"sgd": book.SGD, "momentum": book.Momentum, "nesterov": book.Nesterov,
           "adagrad": book.AdaGrad, "rmsprop": book.RMSprop, "adam": book.Adam}
DEFAULTS = {"sgd": {"lr": 0.01}, "momentum": {"lr": 0.01, "momentum": 0.9},
            "nesterov": {"lr": 0.01, "momentum": 0.9}, "adagrad": {"lr": 0.01},
            "rmsprop": {"lr": 0.01, "decay_rate": 0.99},
            "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}}


def book_step(name, h, p, g, s, t):
    """The book's arithmetic, in the book's order (out of place). Returns the new p."""
    if name == "sgd":
        return p - h["lr"] * g
    if name == "momentum":
        s["v"] = h["momentum"] * s.get("v", np.zeros_like(p)) - h["lr"] * g
        return p + s["v"]
    if name == "nesterov":
        v = s.get("v", np.zeros_like(p)) * h["momentum"]
        s["v"] = v - h["lr"] * g
        p = p + h["momentum"] * h["momentum"] * s["v"]
        return p - (1 + h["momentum"]) * h["lr"] * g
    if name in ("adagrad", "rmsprop"):
        if name == "adagrad":
            s["h"] = s.get("h", np.zeros_like(p)) + g * g
        else:
            s["h"] = s.get("h", np.zeros_like(p)) * h["decay_rate"]
            s["h"] = s["h"] + (1 - h["decay_rate"]) * g * g
        return p - h["lr"] * g / (np.sqrt(s["h"]) + 1e-7)
    lr_t = h["lr"] * np.sqrt(1.0 - h["beta2"] ** t) / (1.0 - h["beta1"] ** t)
    s["m"] = s.get("m", np.zeros_like(p)) + (1 - h["beta1"]) * (g - s.get("m", 0.0))
    s["v"] = s.get("v", np.zeros_like(p)) + (1 - h["beta2"]) * (g ** 2 - s.get("v", 0.0))
    return p - lr_t * s["m"] / (np.sqrt(s["v"]) + 1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_book_optimizer_is_bitwise_the_books_formula(name):
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((5, 4)), "b": rng.standard_normal(4)}
    expected = {k: v.copy() for k, v in params.items()}
    states = {k: {} for k in params}
    h = {**DEFAULTS[name], "lr": 0.05}
    opt = CLASSES[name](**h)
    for t in range(1, 26):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.update(params, grads)
        for k in params:
            expected[k] = book_step(name, h, expected[k], grads[k], states[k], t)
            assert np.array_equal(params[k], expected[k]), (t, k)


@pytest.mark.parametrize("name", NAMES)
def test_book_defaults(name):
    config = CLASSES[name]().get_config()
    assert config == {"name": f"book.{name}", **DEFAULTS[name]}


def test_book_attribute_names():
    adam, momentum, adagrad = book.Adam(), book.Momentum(), book.AdaGrad()
    assert adam.iter == 0 and adam.m is None and momentum.v is None and adagrad.h is None
    params = {"W": np.ones(2)}
    for opt in (adam, momentum, adagrad):
        opt.update(params, {"W": np.ones(2)})
    assert adam.iter == 1 and set(adam.m) == {"W"} and set(momentum.v) == {"W"}
    assert set(adagrad.h) == {"W"}


def run_2d(opt, steps=30, boxed=True):
    """The book's f(x, y) = x²/20 + y² from (-7, 2); returns the path (steps + 1, 2)."""
    params = {"x": np.array(-7.0), "y": np.array(2.0)} if boxed else {"x": -7.0, "y": 2.0}
    path = [(-7.0, 2.0)]
    for _ in range(steps):
        opt.update(params, {"x": params["x"] / 10.0, "y": 2.0 * params["y"]})
        path.append((float(params["x"]), float(params["y"])))
    return np.array(path)


def sign_changes(values):
    return int(np.count_nonzero(np.diff(np.sign(values)) != 0))


def test_2d_function_paths_show_the_books_behaviour():
    sgd = run_2d(book.SGD(lr=0.95))
    momentum = run_2d(book.Momentum(lr=0.1))
    adagrad = run_2d(book.AdaGrad(lr=1.5))
    adam = run_2d(book.Adam(lr=0.3))
    radius = {name: float(np.hypot(*path[-1])) for name, path in
              [("sgd", sgd), ("momentum", momentum), ("adagrad", adagrad), ("adam", adam)]}
    # SGD zig-zags: y flips sign on every step, and x creeps toward 0 without overshooting.
    assert sign_changes(sgd[:, 1]) == 30
    assert np.all(np.diff(sgd[:, 0]) > 0) and sgd[-1, 0] < -0.3
    assert radius["sgd"] > max(radius["adagrad"], radius["adam"])
    # Momentum rolls like a ball: a slow sway in y (a few sign changes, not one per step)
    # and an overshoot past the minimum in x.
    assert 2 <= sign_changes(momentum[:, 1]) <= 6
    assert momentum[:, 0].max() > 0.5
    # AdaGrad: big first steps, then y is damped without ever changing sign; x goes straight
    # toward the origin.
    assert sign_changes(adagrad[:, 1]) == 0 and abs(adagrad[-1, 1]) < 1e-10
    assert np.all(np.diff(adagrad[:, 0]) > 0) and radius["adagrad"] < 0.2
    np.testing.assert_allclose(adagrad[1], [-5.5, 0.5], rtol=1e-6)
    # Adam rolls like a ball too, but sways less than Momentum and ends near the origin.
    assert 1 <= sign_changes(adam[:, 1]) < sign_changes(momentum[:, 1])
    assert np.abs(adam[5:, 1]).max() < np.abs(momentum[5:, 1]).max()
    assert radius["adam"] < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_python_float_params_are_rebound_like_the_book(name):
    boxed = run_2d(CLASSES[name](), steps=5)
    floats = run_2d(CLASSES[name](), steps=5, boxed=False)
    assert np.array_equal(boxed, floats)


@pytest.mark.parametrize("name", NAMES)
def test_book_float32_stays_float32(name):
    params = {"W": np.ones((3, 2), np.float32)}
    opt = CLASSES[name]()
    for _ in range(3):
        opt.update(params, {"W": np.full((3, 2), 0.5, np.float32)})
    assert params["W"].dtype == np.float32
    assert all(a.dtype == np.float32 for slot in opt.state.values() for a in slot.values())


def test_book_accepts_a_gradient_of_another_float_dtype():
    params = {"W": np.ones(2, np.float32)}
    book.SGD(lr=0.5).update(params, {"W": np.ones(2)})
    assert params["W"].dtype == np.float32 and np.all(params["W"] == 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_book_state_dict_round_trip(name):
    rng = np.random.default_rng(5)
    grads_seq = [{"W": rng.standard_normal(3)} for _ in range(8)]
    full, params = CLASSES[name](), {"W": np.ones(3)}
    for grads in grads_seq:
        full.update(params, grads)
    first, resumed = CLASSES[name](), {"W": np.ones(3)}
    for grads in grads_seq[:3]:
        first.update(resumed, grads)
    second = CLASSES[name]()
    second.load_state_dict(first.state_dict())
    for grads in grads_seq[3:]:
        second.update(resumed, grads)
    assert np.array_equal(resumed["W"], params["W"])


@pytest.mark.parametrize("name", [*NAMES, "RMSPRPO"])
def test_book_get(name):
    opt = book.get(name, lr=0.2)
    assert opt.lr == 0.2
    assert type(opt) is CLASSES.get(name.lower(), book.RMSprop)


def test_book_get_unknown_name():
    with pytest.raises(ValueError, match=r"book\.optimizers\.get: name must be one of the known "
                                         r"names; got name='adamw'\. did you mean 'adam'\?"):
        book.get("adamw")


def test_book_get_non_str():
    with pytest.raises(TypeError, match=r"book\.optimizers\.get: name must be a str"):
        book.get(None)


@pytest.mark.parametrize("name", NAMES)
def test_book_nonpositive_lr_raises(name):
    with pytest.raises(ValueError, match=rf"{CLASSES[name].__name__}: lr must be in \(0, inf\]"):
        CLASSES[name](lr=0)


@pytest.mark.parametrize(("cls", "arg", "value"), [
    (book.Momentum, "momentum", -0.1), (book.Nesterov, "momentum", -0.1),
    (book.RMSprop, "decay_rate", 1.0), (book.Adam, "beta1", 1.0), (book.Adam, "beta2", -0.5)])
def test_book_hyperparameters_are_checked(cls, arg, value):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {arg} must be in .*; "
                                         rf"got {arg}={value}\."):
        cls(**{arg: value})
