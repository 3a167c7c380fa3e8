"""compile(model): one buffer for parameters and state, shared by model, layers and wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from groundup import fast, io
from groundup.fast.pack import pack, packed
from groundup.fast.trace import tracing
from groundup.models import MultiLayerNetExtend, Sequential, SimpleConvNet, TwoLayerNet
from groundup.optimizers import SGD


def bn_net(dtype=np.float32):
    return MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, use_dropout=True,
                               dropout_ration=0.2, rng=0, dtype=dtype)


def test_compile_packs_parameters_then_state_into_one_buffer():
    model = bn_net()
    before = {k: v.copy() for k, v in [*model.params.items(), *model.state.items()]}
    with tracing() as ran:
        compiled = fast.compile(model)
    assert ran == {"pack": 1}
    buf = compiled.packed
    params, state = list(model.params.values()), list(model.state.values())
    assert buf.buffer.size == sum(a.size for a in params + state)
    assert buf.param_buffer.size == sum(p.size for p in params)
    flat = np.concatenate([a.ravel() for a in params + state])
    assert np.array_equal(buf.buffer, flat)  # params in params order, then state
    assert all(p.base is buf.param_buffer and p.flags.c_contiguous for p in params)
    assert all(s.base is buf.state_buffer for s in state)
    for k, v in [*model.params.items(), *model.state.items()]:
        assert np.array_equal(v, before[k]) and v.dtype == before[k].dtype, k
    layer = model.layers["Affine1"]
    assert layer.W is model.params["W1"] and layer.b is model.params["b1"]
    bn = model.layers["BatchNorm1"]
    assert bn.running_mean is model.state["running_mean1"]
    assert compiled.params is model.params and compiled.state is model.state


def test_a_packed_model_is_not_packed_again():
    model = bn_net()
    first = fast.compile(model).packed
    with tracing() as ran:
        again = fast.compile(model)
    assert not ran and again.packed.buffer is first.buffer
    assert packed(model).param_buffer is first.param_buffer
    assert fast.compile(again) is again


def test_model_and_compiled_model_see_every_update():
    model = bn_net(np.float64)
    compiled = fast.compile(model)
    x = np.random.default_rng(0).random((8, 6))
    t = np.arange(8) % 3
    SGD(lr=0.1).update(compiled.params, compiled.gradient(x, t))
    stats = {k: v.copy() for k, v in model.state.items()}
    assert not np.array_equal(stats["running_mean1"], 0)  # the compiled step moved them
    before = model.predict(x)
    assert np.allclose(compiled.predict(x), before, rtol=1e-12, atol=1e-12)
    model.params["W1"] *= 0.5  # through the model: the compiled model sees it
    assert not np.allclose(model.predict(x), before)
    assert np.allclose(compiled.predict(x), model.predict(x), rtol=1e-12, atol=1e-12)
    model.gradient(x, t)  # the reference path updates the same statistics
    assert not np.array_equal(compiled.state["running_var1"], stats["running_var1"])


def test_saving_and_loading_see_the_packed_arrays(tmp_path):
    model = bn_net()
    compiled = fast.compile(model)
    x = np.random.default_rng(1).random((8, 6), dtype=np.float32)
    for _ in range(3):
        SGD(lr=0.1).update(compiled.params, compiled.gradient(x, np.arange(8) % 3))
    path = io.save(model, tmp_path / "model.npz")
    loaded = io.load(path)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    fresh = fast.compile(bn_net())
    io.set_model_arrays(fresh.model, io.read_npz(path, io.MODEL_FORMAT)[0], str(path))
    assert np.array_equal(fresh.predict(x), compiled.predict(x))
    assert all(p.base is fresh.packed.param_buffer for p in fresh.params.values())


def test_arrays_of_several_dtypes_are_left_as_they_are():
    model = TwoLayerNet(4, 3, 2, rng=0)
    layer = model.layers["Affine2"]
    layer.W = model.params["W2"] = layer.W.astype(np.float64)
    assert pack(model) is None
    compiled = fast.compile(model)
    assert compiled.packed is None and model.params["W2"] is layer.W


def test_compiled_model_has_the_model_contract():
    model = SimpleConvNet((1, 8, 8), {"filter_num": 2, "filter_size": 3}, hidden_size=4,
                          output_size=3, rng=0)
    compiled = fast.compile(model)
    assert compiled.model is model
    assert compiled.input_shape == (1, 8, 8) and compiled.output_shape == (3,)
    assert compiled.get_config() == model.get_config()  # passed through to the model
    compiled.check_finite = False
    assert model.check_finite is False
    compiled.check_finite = True
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    compiled.gradient(x, np.arange(4) % 3)
    assert compiled.last_loss == model.last_loss is not None
    assert compiled.regularization_loss() == model.regularization_loss()
    assert compiled.last_layer.forward(compiled.predict(x), np.arange(4) % 3) > 0
    assert "CompiledModel(SimpleConvNet" in repr(compiled)
    with pytest.raises(TypeError, match="fast.compile: model must be a groundup.models"):
        fast.compile(object())


def test_layers_added_after_compiling_are_compiled_too():
    model = Sequential((4,), rng=0).add("dense", units=3)
    compiled = fast.compile(model)
    model.add("relu").add("dense", units=2)
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    assert compiled.predict(x).shape == (5, 2)
    assert all(p.base is compiled.packed.param_buffer for p in model.params.values())
    np.testing.assert_array_equal(compiled.predict(x), model.predict(x))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_an_empty_batch_predicts_no_rows(kind):
    if kind == "dense":
        model, shape = bn_net(), (6,)
    else:
        model, shape = SimpleConvNet((1, 8, 8), {"filter_num": 2, "filter_size": 3},
                                     hidden_size=4, output_size=3, rng=0), (1, 8, 8)
    compiled = fast.compile(model)
    x = np.zeros((0, *shape), dtype=np.float32)
    assert compiled.predict(x).shape == (0, 3)
    assert compiled.accuracy(x, np.zeros(0, dtype=int)) == 0.0
    if kind == "dense":
        with pytest.raises(ValueError, match="batch size must be at least 1 in training"):
            compiled.predict(x, train_flg=True)


def test_reused_buffers_do_not_alias_results_across_steps():
    def net():
        return fast.compile(SimpleConvNet((1, 8, 8), {"filter_num": 3, "filter_size": 3},
                                          hidden_size=5, output_size=3, rng=2))

    model = net()
    rng = np.random.default_rng(1)
    x1, x2 = rng.random((4, 1, 8, 8), dtype=np.float32), rng.random((4, 1, 8, 8), dtype=np.float32)
    t = np.array([0, 1, 2, 0])
    first = model.gradient(x1, t)
    kept = {k: v.copy() for k, v in first.items()}
    scores = model.predict(x1)
    kept_scores = scores.copy()
    second = model.gradient(x2, t)
    model.predict(x2)
    for k in first:
        assert np.array_equal(first[k], kept[k]), k  # a later step never writes into them
        assert not np.shares_memory(first[k], second[k]), k
    assert np.array_equal(scores, kept_scores)
    expected = net().gradient(x2, t)  # no buffers kept from an earlier step
    for k in second:
        assert np.array_equal(second[k], expected[k]), k
