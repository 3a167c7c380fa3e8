"""groundup's own threads: splitting, error propagation, and the BLAS held to one thread."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from groundup import optimizers
from groundup.fast import threads as _threads


@pytest.fixture
def two_threads():
    before = _threads.get_num_threads()
    _threads.set_num_threads(2)
    yield
    _threads.set_num_threads(before)


@pytest.mark.parametrize(("size", "parts"), [(10, 3), (100, 2), (7, 7), (3, 5), (1, 1)])
def test_bounds_cover_the_range_in_nearly_equal_parts(size, parts):
    ranges = _threads.bounds(size, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    lengths = [hi - lo for lo, hi in ranges]
    assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1
    assert len(ranges) == min(size, parts)


def test_run_runs_every_part_and_raises_a_workers_error(two_threads):
    seen = []
    _threads.run(lambda i: seen.append((i, threading.get_ident())), [(i,) for i in range(4)])
    assert sorted(i for i, _ in seen) == [0, 1, 2, 3]

    def fail_on_two(i):
        if i == 2:
            raise ValueError("part 2 failed")

    with pytest.raises(ValueError, match="part 2 failed"):
        _threads.run(fail_on_two, [(i,) for i in range(4)])


def test_own_threads_holds_the_blas_to_one_thread_and_restores_it(two_threads):
    pytest.importorskip("threadpoolctl")
    libs = _threads._blas_libs()
    if not libs:
        pytest.skip("no BLAS library found by threadpoolctl")
    before = [lib.num_threads for lib in libs]
    assert _threads.splitting() == 0
    with _threads.own_threads():
        assert [lib.num_threads for lib in libs] == [1] * len(libs)
        assert _threads.splitting() == 2
        with _threads.own_threads():  # re-entrant
            assert _threads.splitting() == 2
        assert [lib.num_threads for lib in libs] == [1] * len(libs)
    assert [lib.num_threads for lib in libs] == before
    assert _threads.splitting() == 0


def test_thread_count_comes_from_the_environment():
    code = "from groundup import fast; print(fast.get_num_threads())"
    env = {**os.environ, "GROUNDUP_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "3"
    env.pop("GROUNDUP_NUM_THREADS")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "5"
    bad = subprocess.run([sys.executable, "-c", code],
                         env={**env, "GROUNDUP_NUM_THREADS": "two"}, capture_output=True,
                         text=True, check=True)
    assert bad.stdout.strip() == "5"  # ignored, with one line saying why and what to do
    assert "GROUNDUP_NUM_THREADS must be a positive integer, got 'two'" in bad.stderr


def test_a_conv_model_trains_the_same_without_threadpoolctl(monkeypatch, two_threads):
    from groundup.fast import compile
    from groundup.models import SimpleConvNet

    def run():
        model = compile(SimpleConvNet((1, 12, 12), {"filter_num": 4, "filter_size": 3},
                                      hidden_size=8, output_size=3, rng=1))
        opt = optimizers.Adam(lr=0.01)
        x = np.random.default_rng(0).random((8, 1, 12, 12), dtype=np.float32)
        for _ in range(3):
            opt.update(model.params, model.gradient(x, np.arange(8) % 3))
        return model.predict(x)

    split = run()
    monkeypatch.setitem(_threads._blas, "libs", [])  # as if threadpoolctl were missing
    plain = run()
    np.testing.assert_allclose(split, plain, rtol=1e-5, atol=1e-6)
