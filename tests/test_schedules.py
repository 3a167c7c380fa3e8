import math

import numpy as np
import pytest

from groundup import schedules
from groundup.optimizers import SGD
from groundup.schedules import (
    Chain,
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    LinearWarmup,
    ReduceLROnPlateau,
    StepDecay,
)


def test_step_decay_values():
    schedule = StepDecay(0.1, step_size=3, gamma=0.5)
    assert [schedule(t) for t in range(7)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]


def test_exponential_decay_values():
    schedule = ExponentialDecay(0.1, gamma=0.9)
    assert schedule(3) == pytest.approx(0.1 * 0.9 ** 3, rel=1e-15)
    smooth = ExponentialDecay(0.1, gamma=0.5, decay_steps=4)
    stair = ExponentialDecay(0.1, gamma=0.5, decay_steps=4, staircase=True)
    assert smooth(2) == pytest.approx(0.1 * 0.5 ** 0.5) and stair(2) == 0.1 and stair(4) == 0.05


def test_inverse_time_decay_values():
    schedule = InverseTimeDecay(0.1, decay=0.5, decay_steps=2)
    assert [schedule(t) for t in (0, 2, 4)] == pytest.approx([0.1, 0.1 / 1.5, 0.1 / 2.0])


def test_inverse_time_decay_equals_optimizer_decay():
    grads = [{"w": np.array([math.sin(i) + 0.5])} for i in range(10)]
    with_decay, scheduled = {"w": np.array([1.0])}, {"w": np.array([1.0])}
    opt_decay = SGD(lr=0.1, momentum=0.9, decay=0.3)
    opt_sched, schedule = SGD(lr=0.1, momentum=0.9), InverseTimeDecay(0.1, decay=0.3)
    for t, g in enumerate(grads):
        opt_decay.update(with_decay, g)
        opt_sched.lr = schedule(t)
        opt_sched.update(scheduled, g)
    np.testing.assert_allclose(with_decay["w"], scheduled["w"], rtol=1e-14)


def test_cosine_decay_values():
    schedule = CosineDecay(0.1, period=4, min_lr=0.02)
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    assert [schedule(t) for t in range(4)] == pytest.approx(expected, rel=1e-14)
    assert schedule(4) == 0.02 and schedule(100) == 0.02


@pytest.mark.parametrize("period_mult", [1.0, 2.0, 1.5])
def test_cosine_warm_restarts_cycles(period_mult):
    schedule = CosineDecay(0.1, period=4, min_lr=0.0, restarts=True, period_mult=period_mult)
    starts, start, length = [], 0.0, 4.0
    for _ in range(5):
        starts.append(start)
        start, length = start + length, length * period_mult
    for s in starts:
        if s == int(s):
            assert schedule(int(s)) == pytest.approx(0.1, rel=1e-14)
    values = [schedule(t) for t in range(int(starts[-1]))]
    assert min(values) < 0.02 and max(values) == pytest.approx(0.1)


def test_cosine_warm_restarts_match_torch():
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2,
                                                                     eta_min=0.01)
    ours = CosineDecay(0.1, period=3, min_lr=0.01, restarts=True, period_mult=2)
    for t in range(100):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        reference.step()


@pytest.mark.parametrize(("torch_name", "torch_kwargs", "ours"), [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, StepDecay(0.1, step_size=3, gamma=0.5)),
    ("ExponentialLR", {"gamma": 0.9}, ExponentialDecay(0.1, gamma=0.9)),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001},
     CosineDecay(0.1, period=10, min_lr=0.001)),
])
def test_schedules_match_torch(torch_name, torch_kwargs, ours):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    reference = getattr(torch.optim.lr_scheduler, torch_name)(opt, **torch_kwargs)
    for t in range(11):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        reference.step()


def test_linear_warmup_then_schedule():
    schedule = LinearWarmup(StepDecay(0.1, step_size=2, gamma=0.5), warmup_steps=4,
                            start_lr=0.02)
    values = [schedule(t) for t in range(8)]
    assert values == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.05, 0.05])
    assert LinearWarmup(0.5, warmup_steps=2)(1) == 0.25


def test_chain_runs_each_schedule_from_its_own_zero():
    schedule = Chain([LinearWarmup(0.1, warmup_steps=2), 0.1, ExponentialDecay(0.1, 0.5)],
                     milestones=[2, 4])
    assert [schedule(t) for t in range(7)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.1, 0.1, 0.05, 0.025])


def test_schedules_are_pure():
    schedule = CosineDecay(0.1, period=5, restarts=True)
    assert [schedule(t) for t in (3, 1, 3)] == [schedule(3), schedule(1), schedule(3)]


@pytest.mark.parametrize("schedule", [Constant(0.1), StepDecay(0.1, 2), ExponentialDecay(0.1, 0.9),
                                      InverseTimeDecay(0.1, 0.1), CosineDecay(0.1, 3),
                                      LinearWarmup(0.1, 2), Chain([0.1, 0.2], [3])])
@pytest.mark.parametrize(("step", "error", "text"), [(-1, ValueError, r"in \[0, inf\]"),
                                                     (1.5, TypeError, "an int")])
def test_bad_step_raises(schedule, step, error, text):
    with pytest.raises(error, match=rf"{type(schedule).__name__}: step must be {text}; "
                                    rf"got step={step}\."):
        schedule(step)


@pytest.mark.parametrize(("build", "pattern"), [
    (lambda: Constant(0.0), r"Constant: lr must be in \(0, inf\]; got lr=0\.0\."),
    (lambda: StepDecay(0.1, 0), r"StepDecay: step_size must be in \[1, inf\]; got step_size=0"),
    (lambda: StepDecay(0.1, 2, gamma=0.0), r"StepDecay: gamma must be in \(0, inf\]"),
    (lambda: ExponentialDecay(-0.1, 0.9), r"ExponentialDecay: lr must be in \(0, inf\]"),
    (lambda: ExponentialDecay(0.1, 0.9, decay_steps=0), r"decay_steps must be in \[1, inf\]"),
    (lambda: InverseTimeDecay(0.1, -1.0), r"InverseTimeDecay: decay must be in \[0, inf\]"),
    (lambda: InverseTimeDecay(0.1, 1.0, 0), r"InverseTimeDecay: decay_steps must be"),
    (lambda: CosineDecay(0.1, 0), r"CosineDecay: period must be in \[1, inf\]"),
    (lambda: CosineDecay(0.1, 5, min_lr=0.2), r"CosineDecay: min_lr must be in \[0, 0\.1\]; "
                                              r"got min_lr=0\.2\."),
    (lambda: CosineDecay(0.1, 5, period_mult=0.5), r"period_mult must be in \[1, inf\]"),
    (lambda: LinearWarmup(0.1, 0), r"LinearWarmup: warmup_steps must be in \[1, inf\]"),
    (lambda: LinearWarmup(0.1, 2, start_lr=-1.0), r"LinearWarmup: start_lr must be in \[0"),
    (lambda: LinearWarmup(-0.1, 2), r"LinearWarmup: after must be in \(0, inf\]"),
    (lambda: Chain([0.1, 0.2], [3, 4]), r"Chain: len\(milestones\) must be len\(schedules\) "
                                        r"- 1 = 1; got len\(milestones\)=2\."),
    (lambda: Chain([0.1, 0.2, 0.3], [3, 3]), r"Chain: milestones\[1\] must be in \[4, inf\]"),
    (lambda: Chain([0.1, 0.2], [0]), r"Chain: milestones\[0\] must be in \[1, inf\]"),
    (lambda: Chain([0.1, -0.2], [2]), r"Chain: schedules\[1\] must be in \(0, inf\]"),
])
def test_bad_schedule_arguments_raise_value_error(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize(("build", "pattern"), [
    (lambda: ExponentialDecay(0.1, 0.9, staircase=1), r"staircase must be a bool"),
    (lambda: CosineDecay(0.1, 5, restarts="yes"), r"CosineDecay: restarts must be a bool"),
    (lambda: Chain([], []), r"Chain: schedules must be a non-empty list of schedules"),
    (lambda: StepDecay("0.1", 2), r"StepDecay: lr must be a real number; got lr='0\.1'"),
])
def test_bad_schedule_arguments_raise_type_error(build, pattern):
    with pytest.raises(TypeError, match=pattern):
        build()


def test_get_builds_schedules_by_name():
    assert isinstance(schedules.get("Cosine", lr=0.1, period=5), CosineDecay)
    assert isinstance(schedules.get("plateau", lr=0.1), ReduceLROnPlateau)
    with pytest.raises(ValueError, match=r"schedules\.get: name must be one of the known names; "
                                         r"got name='cosin'\. did you mean 'cosine'\?"):
        schedules.get("cosin")
    with pytest.raises(TypeError, match=r"schedules\.get: name must be a str"):
        schedules.get(1)


# --- ReduceLROnPlateau --------------------------------------------------------------------
def test_plateau_reduces_after_patience_bad_steps():
    policy = ReduceLROnPlateau(1.0, patience=2, factor=0.5, min_delta=0.0)
    lrs = [policy.step(v) for v in (1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.5)]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_plateau_max_mode_and_min_delta():
    policy = ReduceLROnPlateau(1.0, mode="max", patience=1, factor=0.1, min_delta=0.01)
    lrs = [policy.step(v) for v in (0.5, 0.505, 0.6)]
    assert lrs == pytest.approx([1.0, 0.1, 0.1])
    assert policy.best == 0.6


def test_plateau_cooldown_pauses_counting():
    policy = ReduceLROnPlateau(1.0, patience=1, factor=0.5, cooldown=2, min_delta=0.0)
    lrs = [policy.step(v) for v in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)]
    assert lrs == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_plateau_respects_min_lr_and_nan_is_no_improvement():
    policy = ReduceLROnPlateau(1.0, patience=1, factor=0.1, min_lr=0.05)
    lrs = [policy.step(v) for v in (1.0, math.nan, math.nan, math.nan)]
    assert lrs == [1.0, 0.1, 0.05, 0.05]


def test_plateau_state_dict_round_trip(tmp_path):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.98, 0.5, 0.6, 0.7]
    full = ReduceLROnPlateau(1.0, patience=2, factor=0.5, cooldown=1)
    expected = [full.step(v) for v in metrics]
    first = ReduceLROnPlateau(1.0, patience=2, factor=0.5, cooldown=1)
    got = [first.step(v) for v in metrics[:4]]
    np.savez(tmp_path / "plateau.npz", **first.state_dict())
    second = ReduceLROnPlateau(1.0, patience=2, factor=0.5, cooldown=1)
    with np.load(tmp_path / "plateau.npz", allow_pickle=False) as saved:
        second.load_state_dict(saved)
    got += [second.step(v) for v in metrics[4:]]
    assert got == expected


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"lr": 0.0}, ValueError, r"ReduceLROnPlateau: lr must be in \(0, inf\]"),
    ({"mode": "minimum"}, ValueError, r"ReduceLROnPlateau: mode must be one of the known names; "
                                      r"got mode='minimum'\. did you mean 'min'\?"),
    ({"factor": 1.0}, ValueError, r"ReduceLROnPlateau: factor must be in \(0, 1\)"),
    ({"factor": 0.0}, ValueError, r"ReduceLROnPlateau: factor must be in \(0, 1\)"),
    ({"patience": -1}, ValueError, r"ReduceLROnPlateau: patience must be in \[0, inf\]"),
    ({"patience": 1.5}, TypeError, r"ReduceLROnPlateau: patience must be an int"),
    ({"min_delta": -0.1}, ValueError, r"ReduceLROnPlateau: min_delta must be in \[0, inf\]"),
    ({"cooldown": -2}, ValueError, r"ReduceLROnPlateau: cooldown must be in \[0, inf\]"),
    ({"min_lr": -1.0}, ValueError, r"ReduceLROnPlateau: min_lr must be in \[0, inf\]"),
])
def test_plateau_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        ReduceLROnPlateau(**{"lr": 0.1, **kwargs})


def test_plateau_bad_metric_raises():
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau: metric must be a real number; "
                                        r"got metric='0\.5'\."):
        ReduceLROnPlateau(0.1).step("0.5")


def test_plateau_load_bad_state_raises():
    policy = ReduceLROnPlateau(0.1)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: state must be a mapping with keys "
                                         r".*missing \['best'"):
        policy.load_state_dict({"lr": np.asarray(0.1)})
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau: state must be a mapping"):
        policy.load_state_dict(3)
