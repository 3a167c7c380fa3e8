"""One process, interleaved rounds: the training step of the reference path, the engine
without and with numba, and the GEMM roofline, as ratios of one another (numbers, never tests).

Run::

    .venv/bin/python benchmarks/step_ab.py --model a --rounds 60

Each variant runs ``--steps`` steps per round, rounds interleaved; the 20th percentile of a
variant's per-step times is compared, since a shared machine's noise only adds time. In one
process the sides share caches and thread pools, so ``speed.py`` (one worker process per side)
remains the benchmark; this script is for before/after comparisons of an engine change.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

import speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=speed.MODELS, default="a")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    speed.ensure_protocol(args.threads)
    import numpy as np

    from groundup import fast

    fast.set_num_threads(args.threads)
    ref = speed.groundup_step(args.model, fast=False)
    variants = {"reference": (ref, "0"), "engine, numpy": (speed.groundup_step(args.model), "0"),
                "engine, numba": (speed.groundup_step(args.model), "1"),
                "roofline": (speed.roofline_step(ref.model), "0")}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (step, numba) in variants.items():
            os.environ["GROUNDUP_NUMBA"] = numba
            for _ in range(3):
                step()
            times[name].append(timeit.timeit(step, number=args.steps) / args.steps * 1e6)
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"{speed.TITLES[args.model]}; per step, 20th percentile of {args.rounds} rounds")
    base = float(np.percentile(times["reference"], 20))
    for name, values in times.items():
        p20 = float(np.percentile(values, 20))
        print(f"  {name:<15}{p20:9.1f} us   {p20 / base:6.3f} of the reference's time")


if __name__ == "__main__":
    main()
