"""The fast optimizer update (``groundup.fast.optimizer``) against the reference optimizers.

Every case of ``test_optimizers.CASES`` (every optimizer and every option that changes its
formula) runs in float32 and float64, on 1, 2 and 3 threads, with the parameters as separate
arrays and as consecutive views of one buffer (runs of small parameters, packed, and one
parameter of 120,000 elements, split over the threads), with the numba kernels off and on,
for STEPS updates with a ``state_dict`` save and reload half way. Each case asserts which
fast pieces ran, so a case that fell back to the reference fails.

The bound. SGD, AdaGrad, RMSprop and Adadelta do the reference's operations in its order:
their parameters and state must be bit-equal to the reference's. Adam, AdamW and Nadam keep
the moments ``m``, ``v`` bit-equal but fold the bias corrections into the step, so their
step ``u`` differs from the reference's by a few roundings (<= ~6 eps |u|), and each update
``p - u`` rounds once on each side (<= eps |p| apart). Over ``t`` updates, with
``|u| <= max|p| / 6``::

    |p_fast - p_ref| <= 2 * t * eps * max|p_ref|        (per array; eps of the dtype)

and the same for every state array against its own ``max|s_ref|`` (weight decay feeds the
difference of ``p`` back into ``g``, scaled down by ``weight_decay``). Between fast variants
(packed or not, any thread count, numba or NumPy) everything is bit-equal: every element
goes through the same operations. ``test_the_equivalence_check_catches_breaks`` proves that
the check fails, by orders of magnitude, when a piece of the engine is broken.
"""

import copy
import dataclasses
import importlib.util
import io
from types import SimpleNamespace

import numpy as np
import pytest

from groundup import fast, optimizers
from groundup.book import optimizers as book
from groundup.fast import _numba, threads, trace
from groundup.fast import optim as fast_optim
from groundup.fast._optim_rules import RULES
from test_optimizers import CASE_IDS, CASES

STEPS = 6
RELOAD_AT = 3
# W2 (120,000 elements) is split over 2 or 3 threads; [W1, b1] and [b2, W3, b3] are packed runs.
SHAPES = {"W1": (30, 20), "b1": (20,), "W2": (300, 400), "b2": (400,), "W3": (400, 3),
          "b3": (3,)}
EXACT = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta")
NUMBA_RULES = ("sgd", "momentum", "nesterov", "adam", "adamw")
RULE_NAMES = {"momentum": "sgd", "nesterov": "sgd"}
HAS_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    before = fast.get_num_threads()
    monkeypatch.setenv("GROUNDUP_NUMBA", "0")
    yield
    fast.set_num_threads(before)


def make_params(dtype, layout, seed=0):
    """Parameters with magnitudes in [3, 5]: separate arrays, or consecutive views of one
    buffer with room before and after them (a compiled model keeps other state there)."""
    rng = np.random.default_rng(seed)
    values = {k: (rng.uniform(3, 5, s) * rng.choice([-1, 1], s)).astype(dtype)
              for k, s in SHAPES.items()}
    if layout == "separate":
        return values
    buffer = np.zeros(5 + sum(v.size for v in values.values()) + 7, dtype=dtype)
    params, offset = {}, 5
    for key, value in values.items():
        params[key] = buffer[offset:offset + value.size].reshape(value.shape)
        params[key][...] = value
        offset += value.size
    return params


def make_grads(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.uniform(-2, 2, s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(STEPS)]


def reload(opt):
    """A new optimizer from ``opt``'s config and saved state (through an .npz file)."""
    file = io.BytesIO()
    np.savez(file, **opt.state_dict())
    file.seek(0)
    second = optimizers.get(**opt.get_config())
    with np.load(file, allow_pickle=False) as saved:
        second.load_state_dict(saved)
    return second


def train(name, kwargs, dtype, layout, update):
    """STEPS updates with a save and reload after RELOAD_AT; returns params and state."""
    params, grads_seq = make_params(dtype, layout), make_grads(dtype)
    opt = optimizers.get(name, **kwargs)
    step = update(opt, params)
    for t, grads in enumerate(grads_seq, start=1):
        step(params, grads)
        if t == RELOAD_AT:
            opt = reload(opt)
            step = update(opt, params)
    return params, opt.state_dict()


def reference(opt, params):
    return opt.update


def fast_update(opt, params):
    compiled = SimpleNamespace(params=params)
    return fast.optimizer(opt, compiled).update


def worst_ratio(got, want, dtype, steps=STEPS):
    """max |got - want| / (2 * steps * eps * max|want|) over the arrays of two results."""
    eps = np.finfo(dtype).eps
    worst = 0.0
    for part in (0, 1):
        for key, value in want[part].items():
            if value.ndim == 0:
                continue
            error = float(np.max(np.abs(got[part][key] - value)))
            bound = 2 * steps * eps * float(np.max(np.abs(value)))
            worst = max(worst, error / bound if bound else (np.inf if error else 0.0))
    return worst


def expected_pieces(name, kwargs, layout, n_threads, numba):
    rule = RULE_NAMES.get(name, name)
    pieces = {}
    if layout == "views":
        pieces["optim.packed"] = STEPS
    if numba and name in NUMBA_RULES and not kwargs.get("amsgrad"):
        pieces[f"optim.numba.{rule}"] = STEPS
    else:
        pieces[f"optim.kernel.{rule}"] = STEPS
        if n_threads > 1 and rule != "sgd":
            pieces["optim.threads"] = STEPS
    return pieces


def compare(name, kwargs, dtype, n_threads, layout, numba, monkeypatch):
    """(worst error / bound, the fast pieces that ran, the pieces that should have run)."""
    fast.set_num_threads(n_threads)
    monkeypatch.setenv("GROUNDUP_NUMBA", "1" if numba else "0")
    want = train(name, kwargs, dtype, layout, reference)
    with trace.tracing() as ran:
        got = train(name, kwargs, dtype, layout, fast_update)
    return (worst_ratio(got, want, dtype), dict(ran),
            expected_pieces(name, kwargs, layout, n_threads, numba))


def check(name, kwargs, dtype, n_threads, layout, numba, monkeypatch):
    """The equivalence check of one case: the right pieces ran, within the bound."""
    ratio, ran, expected = compare(name, kwargs, dtype, n_threads, layout, numba, monkeypatch)
    assert ran == expected
    if name in EXACT:
        assert ratio == 0.0, f"not bit-equal: {ratio:.3g} x the bound"
    else:
        assert ratio <= 1.0, f"{ratio:.3g} x the bound"


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("layout", ["separate", "views"])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_fast_update_matches_the_reference(name, kwargs, dtype, n_threads, layout, numba,
                                           monkeypatch):
    if numba and not HAS_NUMBA:
        pytest.skip("numba is not installed")
    check(name, kwargs, dtype, n_threads, layout, numba, monkeypatch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_fast_variants_are_bit_equal(name, kwargs, dtype, monkeypatch):
    results = {}
    for numba in (False, True) if HAS_NUMBA else (False,):
        monkeypatch.setenv("GROUNDUP_NUMBA", "1" if numba else "0")
        for n_threads in (1, 2, 3):
            fast.set_num_threads(n_threads)
            for layout in ("separate", "views"):
                with trace.tracing() as ran:
                    results[(numba, n_threads, layout)] = train(name, kwargs, dtype, layout,
                                                                fast_update)
                assert ran == expected_pieces(name, kwargs, layout, n_threads, numba)
    first = results[(False, 1, "separate")]
    for variant, (params, state) in results.items():
        for key in SHAPES:
            assert np.array_equal(params[key], first[0][key]), (variant, key)
            assert params[key].dtype == dtype
        assert state.keys() == first[1].keys()
        for key, value in state.items():
            assert np.array_equal(value, first[1][key]), (variant, key)
            assert "." not in key or value.dtype == dtype


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_fast_then_reference_then_fast_continues(name, kwargs):
    fast.set_num_threads(2)
    dtype, grads_seq = np.float64, make_grads(np.float64)
    want = make_params(dtype, "separate")
    expected = optimizers.get(name, **kwargs)
    for grads in grads_seq:
        expected.update(want, grads)

    params = make_params(dtype, "views")
    opt = optimizers.get(name, **kwargs)
    engine = fast.optimizer(opt)
    with trace.tracing() as ran:
        engine.update(params, grads_seq[0])
        engine.update(params, grads_seq[1])
    assert ran["optim.packed"] == 2
    views = {slot: dict(arrays) for slot, arrays in opt.state.items()}
    opt.update(params, grads_seq[2])  # the reference works on the engine's state views
    opt.update(params, grads_seq[3])
    assert all(opt.state[slot][key] is view for slot, arrays in views.items()
               for key, view in arrays.items())
    with trace.tracing() as ran:
        engine.update(params, grads_seq[4])
        opt.load_state_dict(opt.state_dict())  # rebinds every state array: gathered again
        engine.update(params, grads_seq[5])
    assert ran["optim.packed"] == 2 and ran["optim.reference"] == 0
    assert opt.iterations == STEPS
    ratio = worst_ratio((params, opt.state_dict()), (want, expected.state_dict()), dtype)
    assert ratio == 0.0 if name in EXACT else ratio <= 1.0


def test_lr_and_hyperparameters_are_read_at_every_update():
    fast.set_num_threads(1)
    grads_seq = make_grads(np.float64)
    results = []
    for update in (reference, fast_update):
        params = make_params(np.float64, "views")
        opt = optimizers.SGD(lr=0.1, momentum=0.9, decay=0.1)
        step = update(opt, params)
        for t, grads in enumerate(grads_seq):
            opt.lr = 0.1 / (t + 1)
            opt.momentum = 0.5 if t > 2 else 0.9
            step(params, grads)
        results.append(params)
    for key in SHAPES:
        assert np.array_equal(results[0][key], results[1][key])


# --- the suite's teeth: each break must fail the check, by orders of magnitude ----------

def _drop_last_part(fn, parts):
    for part in parts[:-1]:
        fn(*part)


def _gapped_bounds(size, parts):
    """Chunks that leave out the last element before every inner boundary."""
    ranges = [(size * j // parts, size * (j + 1) // parts) for j in range(parts)]
    return [(a, b - 1 if b < size else b) for a, b in ranges]


def _no_weight_decay(rule, opt, shard, c):
    for p, g, slots, work in shard:
        rule.kernel(opt, p, g, slots, work, c)


def _no_bias_correction(opt, lr):
    return lr, lr, opt.eps


def _skipping_kernels():
    def skip(*args):
        return None

    return {"sgd": skip, "adam": skip}


BREAKS = {
    "a kernel skips its last chunk": (
        "adam", {"lr": 0.01}, 3, False,
        lambda mp: mp.setattr(threads, "run", _drop_last_part)),
    "a wrong chunk boundary": (
        "rmsprop", {"lr": 0.01}, 2, False,
        lambda mp: mp.setattr(threads, "bounds", _gapped_bounds)),
    "a zero weight-decay term": (
        "nadam", {"lr": 0.01, "weight_decay": 0.1}, 1, False,
        lambda mp: mp.setattr(fast_optim, "_run_shard", _no_weight_decay)),
    "a dropped bias correction": (
        "adam", {"lr": 0.01}, 1, False,
        lambda mp: mp.setitem(RULES, optimizers.Adam, dataclasses.replace(
            RULES[optimizers.Adam], constants=_no_bias_correction))),
    "a skipped numba kernel": (
        "adam", {"lr": 0.01}, 1, True,
        lambda mp: mp.setattr(_numba, "kernels", _skipping_kernels)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("which", list(BREAKS))
def test_the_equivalence_check_catches_breaks(which, dtype, monkeypatch):
    name, kwargs, n_threads, numba, apply = BREAKS[which]
    if numba and not HAS_NUMBA:
        pytest.skip("numba is not installed")
    check(name, kwargs, dtype, n_threads, "views", numba, monkeypatch)  # sound before
    apply(monkeypatch)
    with pytest.raises(AssertionError):
        check(name, kwargs, dtype, n_threads, "views", numba, monkeypatch)
    ratio, _, _ = compare(name, kwargs, dtype, n_threads, "views", numba, monkeypatch)
    assert ratio > 1e4  # the bound is missed by orders of magnitude, not by rounding


def test_the_check_catches_a_fast_update_that_did_not_run(monkeypatch):
    check("adam", {}, np.float32, 2, "views", False, monkeypatch)
    monkeypatch.delitem(RULES, optimizers.Adam)  # the engine no longer knows Adam
    with pytest.raises(AssertionError):
        check("adam", {}, np.float32, 2, "views", False, monkeypatch)
    ratio, ran, _ = compare("adam", {}, np.float32, 2, "views", False, monkeypatch)
    assert ratio == 0.0 and ran == {"optim.reference": STEPS}  # the numbers alone pass


# --- what runs on the reference path, and the engine's own contract ----------------------

class StepTwice(optimizers.SGD):
    def step(self, p, g, state, lr):
        super().step(p, g, state, 2 * lr)


class PlainAdam(optimizers.Adam):
    """A subclass that changes no step: the engine's Adam rule still applies."""


class DuckTyped:
    lr = 0.5

    def update(self, params, grads):
        for key, p in params.items():
            p -= self.lr * grads[key]


@pytest.mark.parametrize(("opt", "piece"), [
    (StepTwice(lr=0.1), "optim.reference"), (book.Adam(), "optim.reference"),
    (book.SGD(), "optim.reference"), (DuckTyped(), "optim.reference"),
    (PlainAdam(), "optim.kernel.adam")])
def test_unknown_optimizers_run_their_own_update(opt, piece):
    params = make_params(np.float64, "views")
    want = {k: v.copy() for k, v in params.items()}
    clone = copy.deepcopy(opt)
    grads = make_grads(np.float64)[0]
    with trace.tracing() as ran:
        fast.optimizer(opt).update(params, grads)
    clone.update(want, grads)
    assert ran[piece] == 1
    for key in SHAPES:
        np.testing.assert_allclose(params[key], want[key], rtol=1e-15)


def test_fast_optimizer_needs_an_update_method():
    with pytest.raises(TypeError, match=r"fast\.optimizer: opt must be an optimizer with "
                                        r"update\(params, grads\); got opt=3"):
        fast.optimizer(3)


@pytest.mark.parametrize("layout", ["separate", "views"])
def test_fast_update_raises_the_references_errors(layout):
    params, grads = make_params(np.float32, layout), make_grads(np.float32)[0]
    bad_cases = [
        ({**grads, "W1": grads["W1"].T}, ValueError, r"Adam: grads\['W1'\]\.shape must be"),
        ({**grads, "W1": grads["W1"].astype(np.float64)}, TypeError,
         r"Adam: grads\['W1'\]\.dtype must be float32"),
        ({k: v for k, v in grads.items() if k != "b1"}, ValueError,
         r"Adam: grads must be keyed like params; got grads=missing \['b1'\]"),
        ([1.0], TypeError, r"Adam: grads must be a dict of numpy arrays"),
    ]
    opt = optimizers.Adam()
    engine = fast.optimizer(opt)
    for bad, error, match in bad_cases:
        with pytest.raises(error, match=match):
            engine.update(params, bad)
        with pytest.raises(error, match=match):
            opt.update(params, bad)
    assert opt.iterations == 0
    opt.lr = float("nan")
    with pytest.raises(ValueError, match=r"Adam: lr must be finite; got lr=nan"):
        engine.update(params, grads)
    opt.lr = 1e-3
    engine.update(params, grads)
    opt.load_state_dict({"step": np.asarray(1), "m.W2": np.zeros((2, 2)),
                         "v.W2": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"Adam: state 'm\.W2' shape must be \(300, 400\) "
                                         r"like params\['W2'\]; got .*\(2, 2\)\. the loaded"):
        engine.update(params, grads)
    assert opt.iterations == 1


def test_fast_update_of_non_contiguous_and_zero_dimensional_parameters():
    fast.set_num_threads(2)
    base = np.ones((400, 400))
    params = {"W": base.T, "b": np.ones(3), "x": np.array(2.0)}
    grads = {"W": np.full((400, 400), 2.0).T, "b": np.ones(3), "x": np.array(4.0)}
    with trace.tracing() as ran:
        fast.optimizer(optimizers.AdaGrad(lr=0.25)).update(params, grads)
    assert ran == {"optim.kernel.adagrad": 1, "optim.threads": 1}
    assert np.allclose(base, 0.75) and np.allclose(params["b"], 0.75)
    assert params["x"].shape == () and float(params["x"]) == pytest.approx(1.75)


def test_packed_model_parameters_update_like_separate_arrays():
    from groundup.models import MultiLayerNetExtend

    fast.set_num_threads(2)
    model = MultiLayerNetExtend(6, [40, 5], 3, use_batchnorm=True, rng=0)
    model.add("dense", units=200).add("dense", units=200)  # a 200x200 W, updated on its own
    compiled = fast.compile(model)
    packed = compiled.params
    loose = {k: v.copy() for k, v in packed.items()}
    rng = np.random.default_rng(5)
    grads_seq = [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in packed.items()}
                 for _ in range(4)]
    opt, opt_loose = optimizers.Adam(lr=0.01), optimizers.Adam(lr=0.01)
    engine, engine_loose = fast.optimizer(opt, compiled), fast.optimizer(opt_loose)
    with trace.tracing() as ran:
        for grads in grads_seq:
            engine.update(packed, grads)
            engine_loose.update(loose, grads)
    assert ran["optim.packed"] == 4
    runs = [len(members) for _, _, members in engine._plan[1][1]]
    assert runs[-2:] == [1, 1] and runs[0] > 1  # small arrays together, the large one alone
    assert engine_loose._plan[1] is None
    for k in packed:
        assert np.array_equal(packed[k], loose[k]), k
    for key, value in opt.state_dict().items():
        assert np.array_equal(value, opt_loose.state_dict()[key]), key


def test_numba_kernels_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("GROUNDUP_NUMBA", "0")
    assert _numba.kernels() is None


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match=r"set_num_threads: n must be in \[1, inf\]; got n=0"):
        fast.set_num_threads(0)
    fast.set_num_threads(3)
    assert fast.get_num_threads() == 3


def test_one_fast_optimizer_follows_a_change_of_parameters():
    first = make_params(np.float64, "views")
    second = make_params(np.float64, "views", seed=2)
    del second["b3"]  # another buffer, fewer parameters: another layout
    copies = {id(first): {k: v.copy() for k, v in first.items()},
              id(second): {k: v.copy() for k, v in second.items()}}
    grads = make_grads(np.float64)[0]
    opt, want = optimizers.Adam(lr=0.01), optimizers.Adam(lr=0.01)
    engine = fast.optimizer(opt)
    for current in (first, second, first):
        update = {k: grads[k] for k in current}
        with trace.tracing() as ran:
            engine.update(current, update)
        want.update(copies[id(current)], update)
        assert ran["optim.packed"] == 1
    for current in (first, second):
        for key, value in current.items():
            ratio = np.max(np.abs(value - copies[id(current)][key])) / (
                2 * 3 * np.finfo(np.float64).eps * np.max(np.abs(value)))
            assert ratio <= 1.0, key
