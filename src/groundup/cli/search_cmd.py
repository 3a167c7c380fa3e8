"""``groundup search``: hyperparameter search with a validation split of the training data.

Defaults are the book's chapter 6 setup: the first 500 training images, 20 % of them held
out for validation, a 6×100 ReLU net trained with SGD for 50 epochs, 100 random trials of
``lr = 10^U(-6,-2)`` and ``weight_decay = 10^U(-8,-4)``. The test set is never loaded into
the search. Writes ``config.json``, ``trials.csv``, ``trials.json``, ``best.json`` and
``figures/best-n.png`` (the book's Best-20 grid) and ``figures/score-plane.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from groundup import _files
from groundup._checks import check_choice, check_number, value_error
from groundup.search.space import BOOK_SPACE, OWNER, SearchSpace

ENGINES = ("random", "optuna")
DATASETS = ("mnist", "mnist-sample", "fashion-mnist")
BEST_N = 20


def add_parser(sub: Any) -> None:
    p = sub.add_parser("search", help="search hyperparameters (random or Optuna)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="random", choices=ENGINES,
                   help="random (the book's, no extra dependency) or optuna "
                        "(pip install 'groundup[search]')")
    p.add_argument("--trials", type=int, default=100,
                   help="finished trials wanted (FAILed ones do not count; default 100)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this host")
    p.add_argument("--study", default="groundup-search", help="Optuna study name")
    p.add_argument("--storage", default=None,
                   help="Optuna storage: a journal file path (default OUT/study.journal) or "
                        "postgresql://USER:PASSWORD@HOST:PORT/DB shared by many machines")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (random) or the existing --study "
                        "(optuna; also joins a study other machines work on)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier search run in --out")
    p.add_argument("--param", action="append", default=None, metavar="NAME=SPEC",
                   help="a search dimension: log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH, "
                        "choice:A,B,... or a fixed value; names: lr, weight_decay, "
                        "dropout_ratio, momentum, batchnorm, optimizer, hidden_size, "
                        "hidden_layers, batch_size (default: "
                        f"{' '.join(BOOK_SPACE)})")
    p.add_argument("--epochs", type=int, default=50, help="epochs per trial (default 50)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist, mnist-sample, fashion-mnist, or a .npz/.csv path")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX .gz files")
    p.add_argument("--train-size", type=int, default=500,
                   help="use the first N training examples, 0 = all (default 500, the book's)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="stratified share of those held out for validation (default 0.2)")
    p.add_argument("--score", default="last", choices=("last", "best"),
                   help="a trial's score: last-epoch (book) or best-epoch validation accuracy")
    p.add_argument("--narrow", type=int, nargs=2, default=None, metavar=("K", "ROUNDS"),
                   help="random engine: ROUNDS more rounds of --trials, each on ranges "
                        "re-centred on the top-K trials so far")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "qmc"), help="optuna sampler")
    p.add_argument("--pruner", default="hyperband", choices=("median", "hyperband", "none"),
                   help="optuna pruner on per-epoch validation accuracy (default hyperband)")
    p.add_argument("--heartbeat-interval", type=int, default=60,
                   help="seconds between a running trial's heartbeats (database storage)")
    p.add_argument("--grace-period", type=int, default=120,
                   help="seconds without a heartbeat before a trial is failed and retried")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default runs/search-<time>)")
    p.set_defaults(func=run)


def validate(args: argparse.Namespace) -> None:
    check_choice(OWNER, "--engine", args.engine, ENGINES)
    check_number(OWNER, "--trials", args.trials, low=1, integer=True)
    check_number(OWNER, "--workers", args.workers, low=1, integer=True)
    check_number(OWNER, "--epochs", args.epochs, low=1, integer=True)
    check_number(OWNER, "--train-size", args.train_size, low=0, integer=True)
    check_number(OWNER, "--val-fraction", args.val_fraction, low=0, high=1, low_open=True,
                 high_open=True)
    check_number(OWNER, "--heartbeat-interval", args.heartbeat_interval, low=1, integer=True)
    check_number(OWNER, "--grace-period", args.grace_period, low=1, integer=True)
    if args.grace_period <= args.heartbeat_interval:
        raise value_error(OWNER, "--grace-period",
                          f"> --heartbeat-interval={args.heartbeat_interval}", args.grace_period)
    if args.narrow is not None:
        if args.engine != "random":
            raise value_error(OWNER, "--narrow", "used with --engine random (Optuna's sampler "
                              "narrows by itself)", args.narrow)
        check_number(OWNER, "--narrow K", args.narrow[0], low=1, integer=True)
        check_number(OWNER, "--narrow ROUNDS", args.narrow[1], low=0, integer=True)
    if args.engine == "random" and args.storage is not None:
        raise value_error(OWNER, "--storage", "used with --engine optuna", args.storage)
    if args.engine == "random" and args.resume and args.out is None:
        raise value_error(OWNER, "--out", "the run directory to continue with --resume", None)


def load_search_data(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(SearchData, data source) from the training part of --dataset only."""
    from groundup import data
    from groundup.search.trial import SearchData

    name = args.dataset
    if name.endswith((".npz", ".csv")):
        loader = data.load_npz if name.endswith(".npz") else data.load_csv
        loaded = loader(name, normalize=True, flatten=True)
    else:
        check_choice(OWNER, "--dataset", name, DATASETS)
        if name == "mnist-sample":
            loaded = data.load_mnist_sample(normalize=True, flatten=True)
        elif name == "mnist":
            loaded = data.load_mnist(normalize=True, flatten=True, data_dir=args.data_dir)
        else:
            loaded = data.load_fashion_mnist(normalize=True, flatten=True,
                                             data_dir=args.data_dir)
    x, t = loaded[0]
    if args.train_size:
        if args.train_size > len(x):
            raise value_error(OWNER, "--train-size", f"at most the {len(x)} training "
                              "examples of the data set (0 = all)", args.train_size)
        x, t = x[:args.train_size], t[:args.train_size]
    (x_train, t_train), (x_val, t_val) = data.train_val_split(x, t, args.val_fraction,
                                                              seed=args.seed)
    return SearchData(x_train, t_train, x_val, t_val), loaded.info.to_dict()


def write_figures(result: Any, run_dir: Path) -> list[str]:
    """Best-N grid and the score plane over (lr, weight_decay), or the first two numeric
    parameters; returns notes about figures that were not drawn."""
    from groundup.search.plots import plot_best_n, plot_score_plane

    notes = []
    try:
        plot_best_n(result, run_dir / "figures" / "best-n.png", n=BEST_N)
        numeric = [n for n, p in result.space.params.items()
                   if p.kind in ("log", "uniform", "int")]
        pair = ("lr", "weight_decay") if {"lr", "weight_decay"} <= set(numeric) else \
            tuple(numeric[:2])
        if len(pair) == 2:
            plot_score_plane(result, run_dir / "figures" / "score-plane.png", *pair)
        else:
            notes.append("figures/score-plane.png needs two numeric parameters; not drawn")
    except RuntimeError as exc:  # matplotlib missing: the search itself is complete
        notes.append(f"{exc}; figures not drawn")
    return notes


# What a search run writes: what --overwrite may replace.
OUTPUTS = ("config.json", "trials.csv", "trials.json", "best.json", "figures", "study.journal")


def run(args: argparse.Namespace) -> int:
    from groundup.io import write_text_atomic
    from groundup.search.random_search import random_search
    from groundup.search.result import SearchResult

    validate(args)
    space = SearchSpace.parse(args.param or list(BOOK_SPACE))
    if args.engine == "optuna":
        from groundup.search.storage import import_optuna

        import_optuna()
    run_dir = Path(args.out or f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.exists() and not run_dir.is_dir():
        raise value_error(OWNER, "--out", "a directory", str(run_dir))
    previous = SearchResult.load(run_dir) if args.engine == "random" and args.resume else None
    if previous is not None and previous.space != space:
        raise value_error(OWNER, "--param", "the search space of the run being resumed",
                          " ".join(space.specs()), "stored: " + " ".join(previous.space.specs()))
    if not args.resume:
        _files.claim_output(OWNER, run_dir, OUTPUTS, args.overwrite, resumable=True)
    started = time.time()
    search_data, source = load_search_data(args)
    _files.output_dir(OWNER, run_dir / "figures")
    config = {"command": "search", "argv": sys.argv[1:],
              **{k: v for k, v in vars(args).items() if k != "func"},
              "space": space.specs(), "data_source": source,
              "n_train": len(search_data.x_train), "n_val": len(search_data.x_val)}
    write_text_atomic(run_dir / "config.json", json.dumps(config, indent=2) + "\n")
    common = {"trials": args.trials, "epochs": args.epochs, "seed": args.seed,
              "workers": args.workers, "score": args.score}

    def announce() -> None:
        print(f"search ({args.engine}) on {source['name']}: {len(search_data.x_train)} train "
              f"/ {len(search_data.x_val)} val, {args.trials} trials x {args.epochs} epochs, "
              f"{args.workers} worker(s) -> {run_dir}", file=sys.stderr)

    data_args = (search_data.x_train, search_data.t_train, search_data.x_val,
                 search_data.t_val)
    if args.engine == "random":
        narrow = tuple(args.narrow) if args.narrow else None
        announce()
        # every finished trial is written at once: Ctrl-C or a kill, then --resume, continues
        result = random_search(space, *data_args, **common, narrow=narrow, previous=previous,
                               verbose=True, on_trial=lambda r: r.write(run_dir))
    else:
        from groundup.search.optuna_engine import optuna_search

        storage = args.storage or str(run_dir / "study.journal")
        result = optuna_search(space, *data_args, **common, sampler=args.sampler,
                               pruner=args.pruner, study=args.study, storage=storage,
                               resume=args.resume, heartbeat_interval=args.heartbeat_interval,
                               grace_period=args.grace_period, verbose=True,
                               on_ready=announce)
    elapsed = time.time() - started
    result.settings.update({"dataset": source, "wall_time_s": round(elapsed, 2)})
    result.write(run_dir)
    for note in write_figures(result, run_dir):
        print(f"note: {note}", file=sys.stderr)
    best = result.best
    if best is None:
        print(f"no trial completed ({elapsed:.1f} s); run directory: {run_dir}")
        return 1
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in best["params"].items())
    print(f"best trial {best['number']}: val accuracy {best['score']:.4f} | {shown} "
          f"({len(result.completed)} complete, {result.total_epochs()} epochs, "
          f"{elapsed:.1f} s); run directory: {run_dir}")
    return 0
