"""Optimizer update speed: groundup vs torch.optim on a ~1M-parameter MLP-shaped dict.

Run (both sides in one command, 2 threads each, old-OpenBLAS overrides unset):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 \\
        .venv/bin/python benchmarks/optimizers.py --threads 2

Prints the median time of one ``update`` (all six arrays) per side and the ratio
torch time / groundup time (>= 1.0: groundup is at least as fast). Parameters, gradients
and optimizer state are float32; gradients are fixed so both sides do identical work.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from groundup import optimizers

SHAPES = {"W1": (784, 1000), "b1": (1000,), "W2": (1000, 200), "b2": (200,),
          "W3": (200, 10), "b3": (10,)}
CASES = {
    "adam": ({"lr": 1e-3}, "Adam", {"lr": 1e-3}),
    "sgd-momentum": ({"lr": 0.01, "momentum": 0.9}, "SGD", {"lr": 0.01, "momentum": 0.9}),
}


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    rows = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
            f"threads={d.get('num_threads')} ({os.path.basename(d.get('filepath', ''))})"
            for d in threadpool_info()]
    return "; ".join(rows) or "no BLAS found"


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="updates per timed round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    params0 = {k: (0.01 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    n_params = sum(p.size for p in params0.values())
    optimizers.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = "not installed"

    print(f"parameters: {n_params:,} float32 in {len(SHAPES)} arrays; threads={args.threads}")
    print(f"numpy {np.__version__}, torch {torch_version}, python {platform.python_version()}, "
          f"cpu count {os.cpu_count()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}")
    print(f"BLAS: {blas_info()}")
    print(f"{'optimizer':<14}{'groundup ms':>12}{'1-thread ms':>13}{'torch ms':>10}{'ratio':>8}")
    for name, (kwargs, torch_name, torch_kwargs) in CASES.items():
        params = {k: v.copy() for k, v in params0.items()}
        opt = optimizers.get(name.split("-")[0], **kwargs)

        def ours(opt=opt, params=params):
            opt.update(params, grads)

        def ours_serial(opt=opt, params=params):
            optimizers.set_num_threads(1)
            try:
                opt.update(params, grads)
            finally:
                optimizers.set_num_threads(args.threads)

        sides = {"groundup": ours, "serial": ours_serial}
        if torch is not None:
            tensors = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in params0.values()]
            for tensor, g in zip(tensors, grads.values(), strict=True):
                tensor.grad = torch.from_numpy(g.copy())
            torch_opt = getattr(torch.optim, torch_name)(tensors, **torch_kwargs)
            sides["torch"] = torch_opt.step
        for step in sides.values():
            time_steps(step, 5)
        samples = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, step in sides.items():
                samples[side].append(time_steps(step, args.steps))
        med = {side: statistics.median(values) * 1e3 for side, values in samples.items()}
        torch_ms = med.get("torch", float("nan"))
        print(f"{name:<14}{med['groundup']:>12.3f}{med['serial']:>13.3f}{torch_ms:>10.3f}"
              f"{torch_ms / med['groundup']:>8.2f}")


if __name__ == "__main__":
    main()
