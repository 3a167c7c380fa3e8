import json
import math

import numpy as np
import pytest

from groundup import optimizers
from groundup.optimizers import (
    SGD,
    Adadelta,
    AdaGrad,
    Adam,
    AdamW,
    Momentum,
    Nadam,
    Nesterov,
    RMSprop,
)

SHAPES = {"W1": (4, 3), "b1": (3,), "W2": (3, 2)}
STEPS = 25

# (name, constructor kwargs): every optimizer, and every option that changes the formula.
CASES = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "decay": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("momentum", {}),
    ("nesterov", {"lr": 0.02, "weight_decay": 0.01}),
    ("adagrad", {"lr": 0.1, "decay": 0.01, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "rho": 0.9, "momentum": 0.5, "centered": True,
                 "weight_decay": 0.1}),
    ("adadelta", {"weight_decay": 0.1}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "decay": 0.02}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "momentum_decay": 0.1, "beta2": 0.99}),
]
CASE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]
NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "nadam",
         "adamw"]
CLASSES = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
           "rmsprop": RMSprop, "adadelta": Adadelta, "adam": Adam, "nadam": Nadam,
           "adamw": AdamW}


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    # Magnitudes in [3, 5] keep every parameter away from 0, so relative errors stay meaningful.
    return {k: (rng.uniform(3, 5, s) * rng.choice([-1, 1], s)).astype(dtype)
            for k, s in SHAPES.items()}


def make_grads(steps=STEPS, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.uniform(-2, 2, s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(steps)]


def full_hyperparameters(name, kwargs):
    """Constructor kwargs completed with the torch defaults the docstrings state."""
    defaults = {
        "sgd": {"lr": 1e-3, "momentum": 0.0, "nesterov": False},
        "momentum": {"lr": 0.01, "momentum": 0.9, "nesterov": False},
        "nesterov": {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        "adagrad": {"lr": 1e-2, "eps": 1e-10},
        "rmsprop": {"lr": 1e-2, "rho": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
        "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
        "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False},
        "adamw": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False,
                  "weight_decay": 1e-2},
        "nadam": {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                  "momentum_decay": 4e-3},
    }[name]
    return {"weight_decay": 0.0, "decay": 0.0, **defaults, **kwargs}


def reference_step(name, h, p, g, s, t):
    """One step of the documented formula, written out plainly (not in place). Returns new p."""
    lr = h["lr"] / (1 + h["decay"] * (t - 1))
    if name != "adamw":
        g = g + h["weight_decay"] * p
    if name in ("sgd", "momentum", "nesterov"):
        if h["momentum"] == 0:
            return p - lr * g
        s["buf"] = h["momentum"] * s.get("buf", 0.0) + g
        d = g + h["momentum"] * s["buf"] if h["nesterov"] else s["buf"]
        return p - lr * d
    if name == "adagrad":
        s["h"] = s.get("h", 0.0) + g * g
        return p - lr * g / (np.sqrt(s["h"]) + h["eps"])
    if name == "rmsprop":
        rho = h["rho"]
        s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g ** 2
        v_bar = s["v"]
        if h["centered"]:
            s["g_avg"] = rho * s.get("g_avg", 0.0) + (1 - rho) * g
            v_bar = s["v"] - s["g_avg"] ** 2
        d = g / (np.sqrt(v_bar) + h["eps"])
        if h["momentum"]:
            s["buf"] = h["momentum"] * s.get("buf", 0.0) + d
            d = s["buf"]
        return p - lr * d
    if name == "adadelta":
        rho, eps = h["rho"], h["eps"]
        s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g ** 2
        delta = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
        s["u"] = rho * s.get("u", 0.0) + (1 - rho) * delta ** 2
        return p - lr * delta
    b1, b2, eps = h["beta1"], h["beta2"], h["eps"]
    if name == "adamw":
        p = p * (1 - lr * h["weight_decay"])
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    if name in ("adam", "adamw"):
        v = s["v"]
        if h["amsgrad"]:
            s["v_max"] = np.maximum(s.get("v_max", 0.0), s["v"])
            v = s["v_max"]
        m_hat = s["m"] / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    psi = h["momentum_decay"]
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    s["mu_product"] = s.get("mu_product", 1.0) * mu
    v_hat = s["v"] / (1 - b2 ** t)
    m_bar = (mu_next * s["m"] / (1 - s["mu_product"] * mu_next)
             + (1 - mu) * g / (1 - s["mu_product"]))
    return p - lr * m_bar / (np.sqrt(v_hat) + eps)


def run(opt, params, grads_seq):
    for grads in grads_seq:
        opt.update(params, grads)
    return params


@pytest.fixture
def threads():
    before = optimizers.get_num_threads()
    yield optimizers.set_num_threads
    optimizers.set_num_threads(before)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_trajectory_matches_documented_formula(name, kwargs):
    params, grads_seq = make_params(), make_grads()
    opt = optimizers.get(name, **kwargs)
    h = full_hyperparameters(name, kwargs)
    expected = {k: v.copy() for k, v in params.items()}
    states = {k: {} for k in params}
    for t, grads in enumerate(grads_seq, start=1):
        opt.update(params, grads)
        for k in expected:
            expected[k] = reference_step(name, h, expected[k], grads[k], states[k], t)
        for k in params:
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=0)
    moved = max(np.max(np.abs(params[k] - make_params()[k])) for k in params)
    assert moved > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_update_changes_arrays_in_place(name):
    params = make_params()
    held = dict(params)
    before = {k: v.copy() for k, v in params.items()}
    optimizers.get(name).update(params, make_grads(1)[0])
    for k in params:
        assert params[k] is held[k]
        assert not np.array_equal(held[k], before[k])


@pytest.mark.parametrize("name", NAMES)
def test_float32_params_and_state_stay_float32(name):
    params = make_params(np.float32)
    extra = {"momentum": 0.9} if name == "sgd" else {}
    opt = optimizers.get(name, weight_decay=0.01, **extra)
    run(opt, params, make_grads(3, np.float32))
    assert all(p.dtype == np.float32 for p in params.values())
    arrays = [a for slot in opt.state.values() for a in slot.values()]
    assert arrays, "every optimizer here keeps per-parameter state"
    assert all(a.dtype == np.float32 for a in arrays)
    for key, value in opt.state_dict().items():
        if "." in key:
            assert value.dtype == np.float32, key


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_state_dict_round_trip_continues_identically(name, kwargs, tmp_path):
    grads_seq = make_grads()
    reference = run(optimizers.get(name, **kwargs), make_params(), grads_seq)

    first = optimizers.get(name, **kwargs)
    params = run(first, make_params(), grads_seq[:7])
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    config = json.loads(json.dumps(first.get_config()))
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as saved:
        second = optimizers.get(**config)
        second.load_state_dict(saved)
    assert second.iterations == 7
    run(second, params, grads_seq[7:])
    for k in params:
        assert np.array_equal(params[k], reference[k])


def test_state_dict_keys_are_flat_and_named():
    opt = Adam()
    opt.update(make_params(), make_grads(1)[0])
    state = opt.state_dict()
    assert set(state) == {"step", "lr", *(f"{s}.{k}" for s in ("m", "v") for k in SHAPES)}
    assert state["step"].shape == () and int(state["step"]) == 1
    assert Nadam().state_dict().keys() == {"step", "lr", "mu_product"}


def test_state_dict_is_a_snapshot():
    params, grads = make_params(), make_grads(2)
    opt = Momentum()
    opt.update(params, grads[0])
    saved = opt.state_dict()
    snapshot = saved["buf.W1"].copy()
    opt.update(params, grads[1])
    assert np.array_equal(saved["buf.W1"], snapshot)


def test_lr_set_between_steps_is_used():
    params = {"w": np.array([1.0])}
    opt = SGD(lr=0.1)
    opt.update(params, {"w": np.array([1.0])})
    opt.lr = 0.5
    opt.update(params, {"w": np.array([1.0])})
    assert params["w"][0] == pytest.approx(1.0 - 0.1 - 0.5, rel=1e-15)
    assert opt.state_dict()["lr"] == 0.5


def test_decay_is_keras_inverse_time_per_update():
    params = {"w": np.array([0.0])}
    opt = SGD(lr=0.1, momentum=0.0, decay=0.5, nesterov=False)
    steps = []
    for _ in range(4):
        before = params["w"][0]
        opt.update(params, {"w": np.array([1.0])})
        steps.append(before - params["w"][0])
    np.testing.assert_allclose(steps, [0.1 / (1 + 0.5 * i) for i in range(4)], rtol=1e-12)


def test_seed_keras_call_works_as_written():
    opt = optimizers.SGD(lr=0.01, momentum=0.9, decay=0.0, nesterov=False)
    assert opt.get_config() == {"name": "sgd", "lr": 0.01, "weight_decay": 0.0, "decay": 0.0,
                                "momentum": 0.9, "nesterov": False}


@pytest.mark.parametrize("name", ["adam", "rmsprop", "nadam", "sgd"])
def test_threaded_update_is_bitwise_equal_to_serial(name, threads):
    rng = np.random.default_rng(3)
    shapes = {"W": (300, 250), "b": (250,), "V": (7, 9)}
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads_seq = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
                 for _ in range(3)]
    results = []
    for n in (1, 2, 3):
        threads(n)
        params = {k: v.copy() for k, v in start.items()}
        run(optimizers.get(name, momentum=0.9) if name == "sgd" else optimizers.get(name),
            params, grads_seq)
        results.append(params)
    for other in results[1:]:
        for k in shapes:
            assert np.array_equal(results[0][k], other[k])


def test_non_contiguous_parameter_is_updated_in_place(threads):
    threads(2)
    base = np.ones((400, 400))
    params = {"W": base.T, "b": np.ones(3)}
    grads = {"W": np.full((400, 400), 2.0).T, "b": np.ones(3)}
    AdaGrad(lr=0.25).update(params, grads)
    assert np.allclose(base, 0.75) and np.allclose(params["b"], 0.75)


def test_zero_dimensional_parameters_work():
    params = {"x": np.array(-7.0), "y": np.array(2.0)}
    opt = Adam(lr=0.3)
    opt.update(params, {"x": params["x"] / 10, "y": 2 * params["y"]})
    assert params["x"].shape == () and float(params["x"]) == pytest.approx(-7.0 + 0.3, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_get_builds_each_class_case_insensitively(name):
    opt = optimizers.get(name.upper())
    assert type(opt) is CLASSES[name]
    config = opt.get_config()
    assert config["name"] == name
    json.dumps(config)
    assert optimizers.get(**config).get_config() == config


def test_get_returns_an_instance_unchanged():
    opt = Adam()
    assert optimizers.get(opt) is opt


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"optimizers.get: name must be one of the known names; "
                                         r"got name='adamm'\. did you mean 'adam'\?.*'sgd'"):
        optimizers.get("adamm")


def test_get_non_str_name():
    with pytest.raises(TypeError, match="optimizers.get: name must be a str; got name=3"):
        optimizers.get(3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_nonpositive_lr_raises(name, lr):
    owner = CLASSES[name].__name__
    with pytest.raises(ValueError, match=rf"{owner}: lr must be in \(0, inf\]; got lr={lr}\."):
        optimizers.get(name, lr=lr)


@pytest.mark.parametrize(("name", "arg"), [("adam", "beta1"), ("adam", "beta2"),
                                           ("adamw", "beta1"), ("nadam", "beta2"),
                                           ("rmsprop", "rho"), ("adadelta", "rho"),
                                           ("rmsprop", "decay_rate")])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_unit_interval_hyperparameters_are_checked(name, arg, value):
    shown = "rho" if arg == "decay_rate" else arg
    with pytest.raises(ValueError, match=rf": {shown} must be in \[0, 1\); got {shown}={value}"):
        optimizers.get(name, **{arg: value})


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adadelta", "adam", "nadam", "adamw"])
@pytest.mark.parametrize("eps", [0.0, -1e-8])
def test_nonpositive_eps_raises(name, eps):
    with pytest.raises(ValueError, match=r"eps must be in \(0, inf\]; got eps="):
        optimizers.get(name, eps=eps)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop"])
def test_negative_momentum_raises(name):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, inf\]; got momentum=-0.5"):
        optimizers.get(name, momentum=-0.5)


@pytest.mark.parametrize("arg", ["weight_decay", "decay"])
@pytest.mark.parametrize("name", NAMES)
def test_negative_decays_raise(name, arg):
    with pytest.raises(ValueError, match=rf"{arg} must be in \[0, inf\]"):
        optimizers.get(name, **{arg: -1e-3})


def test_negative_momentum_decay_raises():
    with pytest.raises(ValueError, match=r"Nadam: momentum_decay must be in \[0, inf\]"):
        Nadam(momentum_decay=-1.0)


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match=r"SGD: momentum must be > 0 when nesterov=True; "
                                         r"got momentum=0\.0\. set momentum"):
        SGD(nesterov=True)


@pytest.mark.parametrize(("cls", "arg"), [(SGD, "nesterov"), (Adam, "amsgrad"),
                                          (RMSprop, "centered")])
def test_flags_must_be_bool(cls, arg):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: {arg} must be a bool; got {arg}='no'"):
        cls(**{arg: "no"}, **({"momentum": 0.9} if cls is SGD else {}))


def test_lr_of_wrong_type_raises():
    with pytest.raises(TypeError, match=r"Adam: lr must be a real number; got lr='0.1'"):
        Adam(lr="0.1")


def test_rho_and_decay_rate_together_raise():
    with pytest.raises(ValueError, match=r"RMSprop: decay_rate must be left out when rho is "
                                         r"given; got decay_rate=0\.9\."):
        RMSprop(rho=0.9, decay_rate=0.9)


def test_decay_rate_is_rho():
    assert RMSprop(decay_rate=0.9).rho == 0.9


def test_lr_set_to_bad_value_raises_at_update():
    opt = SGD()
    opt.lr = math.nan
    with pytest.raises(ValueError, match=r"SGD: lr must be finite; got lr=nan"):
        opt.update(make_params(), make_grads(1)[0])


def test_grads_with_other_keys_raise():
    grads = make_grads(1)[0]
    del grads["b1"]
    grads["b9"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"Adam: grads must be keyed like params; "
                                         r"got grads=missing \['b1'\], extra \['b9'\]"):
        Adam().update(make_params(), grads)


def test_grad_of_wrong_shape_raises():
    grads = make_grads(1)[0]
    grads["W1"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"grads\['W1'\]\.shape must be \(4, 3\) like "
                                         r"params\['W1'\]; got grads\['W1'\]\.shape=\(3, 4\)"):
        Adam().update(make_params(), grads)


def test_grad_of_wrong_dtype_raises():
    with pytest.raises(TypeError, match=r"grads\['W1'\]\.dtype must be float32 like "
                                        r"params\['W1'\]; got grads\['W1'\]\.dtype=float64"):
        Adam().update(make_params(np.float32), make_grads(1)[0])


def test_grad_not_an_array_raises():
    grads = make_grads(1)[0]
    grads["b1"] = [0.0, 0.0, 0.0]
    with pytest.raises(TypeError, match=r"SGD: grads\['b1'\] must be a numpy array"):
        SGD().update(make_params(), grads)


@pytest.mark.parametrize("bad", [1.0, np.arange(3)])
def test_param_not_a_float_array_raises(bad):
    with pytest.raises(TypeError, match=r"SGD: params\['w'\] must be a floating-point numpy "
                                        r"array.*parameters must be arrays"):
        SGD().update({"w": bad}, {"w": np.ones(3)})


@pytest.mark.parametrize("arg", ["params", "grads"])
def test_params_and_grads_must_be_mappings(arg):
    args = {"params": make_params(), "grads": make_grads(1)[0]}
    args[arg] = [1.0]
    with pytest.raises(TypeError, match=rf"SGD: {arg} must be a dict of numpy arrays"):
        SGD().update(**args)


def test_load_state_dict_from_another_optimizer_raises():
    adam = Adam()
    adam.update(make_params(), make_grads(1)[0])
    with pytest.raises(ValueError, match=r"SGD: state key must be .*; got state key='m\.W1'\. "
                                         r"was it saved by another optimizer"):
        SGD(momentum=0.9).load_state_dict(adam.state_dict())


def test_load_state_dict_without_step_raises():
    with pytest.raises(ValueError, match=r"Adam: state must be a state_dict with a 'step' entry"):
        Adam().load_state_dict({"lr": np.asarray(0.1)})


def test_load_state_dict_of_wrong_type_raises():
    with pytest.raises(TypeError, match=r"Adam: state must be a mapping of arrays"):
        Adam().load_state_dict([1, 2])


def test_loaded_state_of_another_shape_raises_at_update():
    opt = Momentum()
    opt.load_state_dict({"step": np.asarray(1), "buf.W1": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"Momentum: state 'buf\.W1' shape must be \(4, 3\) "
                                         r"like params\['W1'\]; got .*\(2, 2\)\. the loaded"):
        opt.update(make_params(), make_grads(1)[0])


def test_loaded_float64_state_adopts_float32_params():
    opt = Adam()
    opt.load_state_dict({"step": np.asarray(2), "m.W1": np.ones((4, 3)),
                         "v.W1": np.ones((4, 3))})
    params = {"W1": np.ones((4, 3), np.float32)}
    opt.update(params, {"W1": np.ones((4, 3), np.float32)})
    assert opt.state["m"]["W1"].dtype == np.float32 and params["W1"].dtype == np.float32


def test_set_num_threads_validates(threads):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be in \[1, inf\]; got n=0"):
        threads(0)
    threads(3)
    assert optimizers.get_num_threads() == 3


# --- optional: the same numbers as torch.optim --------------------------------------------
TORCH_CASES = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}, "SGD",
     {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("nesterov", {}, "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("adagrad", {"decay": 0.01}, "Adagrad", {"lr_decay": 0.01}),
    ("rmsprop", {"momentum": 0.5, "centered": True}, "RMSprop",
     {"momentum": 0.5, "centered": True}),
    ("rmsprop", {}, "RMSprop", {}),
    ("adadelta", {"weight_decay": 0.1}, "Adadelta", {"weight_decay": 0.1}),
    ("adam", {}, "Adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 0.1}, "Adam",
     {"amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {}, "AdamW", {}),
    ("nadam", {"weight_decay": 0.1}, "NAdam", {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "kwargs", "torch_name", "torch_kwargs"), TORCH_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_matches_torch_optim(name, kwargs, torch_name, torch_kwargs, dtype):
    torch = pytest.importorskip("torch")
    params, grads_seq = make_params(dtype), make_grads(dtype=dtype)
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()}
    torch_opt = getattr(torch.optim, torch_name)(list(tensors.values()), **torch_kwargs)
    opt = optimizers.get(name, **kwargs)
    for grads in grads_seq:
        opt.update(params, grads)
        for k, tensor in tensors.items():
            tensor.grad = torch.from_numpy(grads[k].copy())
        torch_opt.step()
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    if name == "nadam" and dtype == np.float64:
        rtol = 1e-9  # torch keeps NAdam's mu_product as a float32 scalar tensor
    for k in params:
        np.testing.assert_allclose(params[k], tensors[k].detach().numpy(), rtol=rtol)


# -- the optional fused (numba) kernels give the NumPy path's bits -------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "kwargs"), [
    (optimizers.SGD, {"momentum": 0.0}),
    (optimizers.SGD, {"momentum": 0.9}),
    (optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    (optimizers.SGD, {"momentum": 0.8, "weight_decay": 1e-3}),
    (optimizers.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "decay": 1e-2}),
    (optimizers.SGD, {"momentum": 0.0, "weight_decay": 1e-2}),
    (optimizers.Momentum, {}),
    (optimizers.Adam, {}),
    (optimizers.Adam, {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-3}),
    (optimizers.Adam, {"amsgrad": True}),
    (optimizers.AdamW, {}),
])
def test_fused_update_equals_numpy_bit_for_bit(monkeypatch, dtype, cls, kwargs):
    pytest.importorskip("numba")
    from groundup.fast import _numba as _fused

    monkeypatch.setenv("GROUNDUP_NUMBA", "1")
    assert _fused.kernels() is not None
    rng = np.random.default_rng(7)
    # one array above the parallel threshold, one small, one non-contiguous-shaped 2-D
    shapes = [(300, 400), (50,), (20, 7)]
    start = {f"p{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(shapes)}
    grads = [{k: rng.standard_normal(v.shape).astype(dtype) for k, v in start.items()}
             for _ in range(6)]
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("GROUNDUP_NUMBA", flag)
        params = {k: v.copy() for k, v in start.items()}
        opt = cls(lr=0.05, **kwargs)
        for g in grads:
            opt.update(params, g)
        results[flag] = (params, opt.state_dict())
    for key in start:
        np.testing.assert_array_equal(results["1"][0][key], results["0"][0][key], err_msg=key)
        assert results["1"][0][key].dtype == dtype
    for key, value in results["0"][1].items():
        np.testing.assert_array_equal(results["1"][1][key], value, err_msg=key)


def test_fused_kernels_can_be_turned_off(monkeypatch):
    from groundup.fast import _numba as _fused

    monkeypatch.setenv("GROUNDUP_NUMBA", "0")
    assert _fused.kernels() is None


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_packed_model_parameters_update_like_separate_arrays(name, kwargs, threads):
    from groundup.fast import compile
    from groundup.models import MultiLayerNetExtend

    threads(2)
    model = MultiLayerNetExtend(6, [40, 5], 3, use_batchnorm=True, rng=0)
    model.add("dense", units=200).add("dense", units=200)  # a 200x200 W, updated on its own
    packed = compile(model).params  # compiling packs the parameters
    assert all(p.base is not None for p in packed.values())
    loose = {k: v.copy() for k, v in packed.items()}
    rng = np.random.default_rng(5)
    grads_seq = [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in packed.items()}
                 for _ in range(4)]
    opt_packed, opt_loose = optimizers.get(name, **kwargs), optimizers.get(name, **kwargs)
    run(opt_packed, packed, grads_seq[:2])
    run(opt_loose, loose, grads_seq[:2])
    runs = [len(members) for _, _, members in opt_packed._plan[1]]
    assert runs[-2:] == [1, 1] and runs[0] > 1  # small arrays together, the large one alone
    assert opt_loose._plan[1] is None
    state = opt_packed.state_dict()
    resumed = optimizers.get(name, **kwargs)
    resumed.load_state_dict(state)  # separate arrays again, packed on the next update
    run(resumed, packed, grads_seq[2:])
    run(opt_loose, loose, grads_seq[2:])
    for k in packed:
        assert np.array_equal(packed[k], loose[k]), k
    for key, value in resumed.state_dict().items():
        assert np.array_equal(value, opt_loose.state_dict()[key]), key
