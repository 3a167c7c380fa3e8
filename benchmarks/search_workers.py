"""Search benchmarks (numbers, never tests).

``python benchmarks/search_workers.py workers`` — wall time of the same search with
``--workers 1`` and ``--workers 2`` (the book's setup on the bundled sample: 400 train /
100 validation images, 6×100 ReLU, SGD, 50 epochs), for the random engine and for Optuna
on a journal file (pruning off, so every trial costs the same).

``python benchmarks/search_workers.py engines`` — does Optuna TPE + Hyperband reach the
random search's best validation accuracy (within 0.01) with at most a third of its
training epochs? Bundled sample, 400 train / 1,000 validation images, book space, 50
epochs; random: 100 trials; target: random's best - 0.01. Both engines' epochs to the
target are counted the same way (:func:`epochs_to_reach`): trials in order of their number,
every epoch trained (pruned trials included), up to the first COMPLETE trial that reaches
the target. ``--random-trials 10 --optuna-trials 10 --epochs 5 --seeds 1`` is a quick check
that it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from groundup.data import load_mnist_sample
from groundup.search import SearchSpace, optuna_search, random_search
from groundup.search.space import BOOK_SPACE


def book_data(n_val: int) -> tuple[np.ndarray, ...]:
    """400 training images and ``n_val`` validation images, all from the bundled sample's
    training split (the sample is shuffled and stratified already)."""
    (x, t), _ = load_mnist_sample()
    return x[:400], t[:400], x[400:400 + n_val], t[400:400 + n_val]


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_text() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def bench_workers(trials: int, epochs: int) -> list[dict]:
    data = book_data(100)
    space = SearchSpace.parse(BOOK_SPACE)
    rows = []
    for engine in ("random", "optuna"):
        times = {}
        for workers in (1, 2):
            started, cpu_before = time.perf_counter(), cpu_seconds()
            load_before = load_text()
            if engine == "random":
                result = random_search(space, *data, trials=trials, epochs=epochs,
                                       workers=workers)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    result = optuna_search(space, *data, trials=trials, epochs=epochs,
                                           workers=workers, pruner="none",
                                           storage=os.path.join(tmp, "study.journal"))
            times[workers] = time.perf_counter() - started
            rows.append({"engine": engine, "workers": workers, "trials": trials,
                         "epochs": epochs, "wall_s": round(times[workers], 2),
                         "cpu_s": round(cpu_seconds() - cpu_before, 2),
                         "complete": len(result.completed), "load_before": load_before,
                         "load_after": load_text()})
            print(json.dumps(rows[-1]), flush=True)
        print(json.dumps({"engine": engine, "ratio_2_over_1": round(times[2] / times[1], 3)}),
              flush=True)
    return rows


def epochs_to_reach(trials: list[dict], target: float) -> tuple[int | None, float, int]:
    """(epochs spent when a COMPLETE trial first scores >= target or None, best score
    within the budget, total epochs)."""
    spent, best = 0, 0.0
    reached = None
    for t in sorted(trials, key=lambda t: t["number"]):
        spent += t.get("epochs_run", 0)
        if t["state"] == "COMPLETE":
            best = max(best, t["score"])
            if reached is None and t["score"] >= target:
                reached = spent
    return reached, best, spent


def bench_engines(seeds: int, random_trials: int, optuna_trials: int, epochs: int) -> None:
    data = book_data(1000)
    space = SearchSpace.parse(BOOK_SPACE)
    for seed in range(seeds):
        started = time.perf_counter()
        rand = random_search(space, *data, trials=random_trials, epochs=epochs, seed=seed)
        rand_s = time.perf_counter() - started
        target = rand.best["score"] - 0.01
        budget = rand.total_epochs() // 3
        started = time.perf_counter()
        opt = optuna_search(space, *data, trials=optuna_trials, epochs=epochs, seed=seed,
                            sampler="tpe", pruner="hyperband", study=f"engines-{seed}")
        opt_s = time.perf_counter() - started
        reached, _, total = epochs_to_reach(opt.trials, target)
        # random search's own cost to the same target, counted as Optuna's is
        rand_reached, _, _ = epochs_to_reach(rand.trials, target)
        within = [t for t in opt.trials if t["state"] == "COMPLETE"]
        spent = 0
        best_in_budget = 0.0
        for t in sorted(opt.trials, key=lambda t: t["number"]):
            spent += t.get("epochs_run", 0)
            if spent > budget:
                break
            if t["state"] == "COMPLETE":
                best_in_budget = max(best_in_budget, t["score"])
        print(json.dumps({
            "seed": seed, "random_best": rand.best["score"],
            "random_best_lr": rand.best["params"]["lr"], "random_epochs": rand.total_epochs(),
            "target": round(target, 4), "budget_epochs": budget,
            "random_epochs_to_target": rand_reached,
            "optuna_epochs_to_target": reached,
            "hit": reached is not None and reached <= budget,
            "optuna_best_within_budget": best_in_budget,
            "optuna_best_overall": max((t["score"] for t in within), default=0.0),
            "optuna_total_epochs": total, "optuna_complete": len(within),
            "optuna_pruned": sum(t["state"] == "PRUNED" for t in opt.trials),
            "random_s": round(rand_s, 1), "optuna_s": round(opt_s, 1), "load": load_text()}),
            flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("workers", "engines"))
    parser.add_argument("--trials", type=int, default=40, help="workers mode: trials per run")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5, help="engines mode")
    parser.add_argument("--random-trials", type=int, default=100, help="engines mode")
    parser.add_argument("--optuna-trials", type=int, default=100, help="engines mode")
    args = parser.parse_args()
    if args.mode == "workers":
        bench_workers(args.trials, args.epochs)
    else:
        bench_engines(args.seeds, args.random_trials, args.optuna_trials, args.epochs)


if __name__ == "__main__":
    main()
