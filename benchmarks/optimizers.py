"""Optimizer update speed: groundup vs torch.optim on a ~1M-parameter MLP-shaped dict.

Run (one command; it re-executes itself with the protocol's environment)::

    .venv/bin/python benchmarks/optimizers.py --threads 2 --rounds 15

Protocol (DESIGN §9): ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset, ``--threads`` threads
per side, float32. Each side runs in its own worker process (one at a time, interleaved
rounds) so that no side's idle thread pool spins on the cores of the other. Sides: the fast
update (``groundup.fast.optimizer``) with ``--threads`` threads and on one thread, the
reference ``opt.update`` (the formulas of ``groundup.optimizers``), and ``torch.optim``
(default settings). The parameters are views of one flat buffer, as a compiled model's are.
Prints the median time of one update (all six arrays) and the ratios torch time / groundup
time (>= 1.0: groundup at least as fast). Gradients are fixed so every side does identical
work. The fast sides use the fused numba kernels when numba is installed (the info line
says so); ``GROUNDUP_NUMBA=0`` in the environment times the engine's NumPy kernels.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

from speed import Worker, blas_info, cpu_model, ensure_protocol, load_average

SHAPES = {"W1": (784, 1000), "b1": (1000,), "W2": (1000, 200), "b2": (200,),
          "W3": (200, 10), "b3": (10,)}
CASES = {
    "adam": ("adam", {"lr": 1e-3}, "Adam", {"lr": 1e-3}),
    "sgd-momentum": ("sgd", {"lr": 0.01, "momentum": 0.9}, "SGD", {"lr": 0.01, "momentum": 0.9}),
}
SIDES = ("fast", "fast-1", "reference", "torch")


def worker(side: str, threads: int) -> None:
    """Serve ``info`` / ``time CASE STEPS`` requests over stdin, one reply line each."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    rng = np.random.default_rng(0)
    params0 = {k: (0.01 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    steps: dict = {}
    if side == "torch":
        import torch

        torch.set_num_threads(threads)
        for case, (_, _, torch_name, torch_kwargs) in CASES.items():
            tensors = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in params0.values()]
            for tensor, g in zip(tensors, grads.values(), strict=True):
                tensor.grad = torch.from_numpy(g.copy())
            steps[case] = getattr(torch.optim, torch_name)(tensors, **torch_kwargs).step
        info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    else:
        from groundup import fast, optimizers
        from groundup.fast import _numba

        fast.set_num_threads(1 if side == "fast-1" else threads)
        for case, (name, kwargs, _, _) in CASES.items():
            flat = np.empty(sum(v.size for v in params0.values()), dtype=np.float32)
            params, offset = {}, 0
            for key, value in params0.items():
                params[key] = flat[offset:offset + value.size].reshape(value.shape)
                params[key][...] = value
                offset += value.size
            opt = optimizers.get(name, **kwargs)
            update = opt.update if side == "reference" else fast.optimizer(opt).update
            steps[case] = lambda update=update, params=params: update(params, grads)
        kernels = "on" if _numba.kernels() is not None else "off"
        how = ("the reference update, no threads, no numba" if side == "reference" else
               f"{fast.get_num_threads()} update threads; fused numba kernels: {kernels}")
        info = f"numpy {np.__version__}, {how}; BLAS: {blas_info()}"
    for step in steps.values():
        for _ in range(5):
            step()
    for line in sys.stdin:
        words = line.split()
        if words[0] == "info":
            reply = info
        else:
            step, count = steps[words[1]], int(words[2])
            start = time.perf_counter()
            for _ in range(count):
                step()
            reply = repr((time.perf_counter() - start) / count)
        print(reply, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="updates per timed round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median)")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of idle before each timed request")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_protocol(args.threads)
    if args.worker:
        worker(args.worker, args.threads)
        return
    workers = {side: Worker(side, args.threads, __file__) for side in SIDES}
    n_params = sum(math.prod(shape) for shape in SHAPES.values())
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"parameters: {n_params:,} float32 in {len(SHAPES)} arrays; threads={args.threads} "
          f"per side, each side in its own worker process; cpu: {cpu_model()}")
    for side, w in workers.items():
        print(f"{side}: {w.ask('info')}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}")
    print(f"load average before: {load_average()}")
    samples = {case: {side: [] for side in SIDES} for case in CASES}
    for _ in range(args.rounds):
        for case in CASES:
            for side, w in workers.items():
                samples[case][side].append(float(w.ask("time", case, args.steps,
                                                       pause=args.pause)))
    print(f"load average after: {load_average()}")
    for w in workers.values():
        w.close()
    print(f"{'optimizer':<14}{'fast ms':>9}{'1-thread ms':>13}{'reference ms':>14}"
          f"{'torch ms':>10}{'torch/fast':>12}{'torch/1-thread':>16}{'torch/reference':>17}")
    for case in CASES:
        med = {side: statistics.median(v) * 1e3 for side, v in samples[case].items()}
        print(f"{case:<14}{med['fast']:>9.3f}{med['fast-1']:>13.3f}{med['reference']:>14.3f}"
              f"{med['torch']:>10.3f}{med['torch'] / med['fast']:>12.2f}"
              f"{med['torch'] / med['fast-1']:>16.2f}{med['torch'] / med['reference']:>17.2f}")


if __name__ == "__main__":
    main()
