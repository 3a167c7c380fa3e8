"""``groundup experiment``: the seeds' figures as reproducible commands.

``groundup experiment list`` names them; ``groundup experiment run NAME`` writes
``config.json``, ``results.json``, ``timing.json`` and ``figures/*.png`` to ``--out``;
``groundup experiment config NAME`` prints the settings a run would use;
``groundup experiment plot DIR`` redraws a run's figures from its ``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from groundup._checks import check_number


def add_parser(sub: Any) -> None:
    p = sub.add_parser("experiment", help="run the book's experiments (figures + JSON)",
                       description=__doc__.splitlines()[0])
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.add_parser("list", help="list the experiments").set_defaults(func=run)
    replot = actions.add_parser("plot", help="redraw a run's figures from its results.json")
    replot.add_argument("run_dir", metavar="DIR", help="a directory written by `experiment run`")
    replot.set_defaults(func=run)
    for action, helptext in (("run", "run one experiment"),
                             ("config", "print the configuration a run would use")):
        q = actions.add_parser(action, help=helptext)
        q.add_argument("name", metavar="NAME", help="experiment name (see `experiment list`)")
        q.add_argument("--seed", type=int, default=None, help="first seed (default 0)")
        q.add_argument("--dataset", default=None,
                       help="mnist (default; the bundled sample when full MNIST is not "
                            "available), fashion-mnist or mnist-sample")
        q.add_argument("--quick", action="store_true",
                       help="shrink to a few seconds (for tests and a first look)")
        q.add_argument("--set", dest="sets", action="extend", nargs="+", default=[],
                       metavar="KEY=VALUE", help="override a config field, e.g. "
                       "--set epochs=50 lr=0.05 (lists: --set hidden=100,100)")
        if action == "run":
            q.add_argument("--seeds", type=int, default=1,
                           help="run this many seeds (seed, seed+1, ...) and report the spread")
            q.add_argument("--workers", type=int, default=None,
                           help="processes for the seeds (default: min(seeds, cores))")
            q.add_argument("--out", default=None,
                           help="run directory (default runs/experiment-NAME-<time>)")
            q.add_argument("--overwrite", action="store_true",
                           help="replace an earlier experiment run in --out")
            q.add_argument("--no-figures", dest="figures", action="store_false",
                           help="write the JSON files only")
            q.add_argument("--show", action="store_true",
                           help="also open the figures in a window when a display exists")
        q.set_defaults(func=run)
    p.set_defaults(func=_usage, parser=p)


def _usage(args: argparse.Namespace) -> int:
    args.parser.print_help(sys.stderr)
    return 2


def _show(paths: list[str]) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    for backend in ("QtAgg", "TkAgg", "GTK4Agg", "MacOSX"):
        try:
            plt.switch_backend(backend)
            break
        except (ImportError, RuntimeError, ValueError):
            continue
    else:
        print("note: no interactive matplotlib backend; the figures are saved files",
              file=sys.stderr)
        return
    del matplotlib
    for path in paths:
        fig = plt.figure(figsize=(9, 6))
        fig.canvas.manager.set_window_title(path)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(plt.imread(path))
        ax.axis("off")
    plt.show()


def _format(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from groundup import experiments

    if args.action == "list":
        for name in experiments.names():
            print(f"{name:24s} {experiments.get(name).DESCRIPTION}")
        return 0
    if args.action == "plot":
        for path in experiments.plot_run(args.run_dir):
            print(path)
        return 0
    if args.action == "config":
        config = experiments.build_config(args.name, seed=args.seed, dataset=args.dataset,
                                          quick=args.quick, sets=args.sets)
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return 0
    owner = f"experiment {args.name}"
    experiments.get(args.name)
    check_number(owner, "--seeds", args.seeds, low=1, integer=True)
    payload = experiments.run_experiment(
        args.name, seed=0 if args.seed is None else args.seed, seeds=args.seeds,
        dataset=args.dataset, out=args.out, quick=args.quick, sets=args.sets,
        workers=args.workers, figures=args.figures, overwrite=args.overwrite)
    data = payload.get("data")
    if data and data.get("fallback"):
        print(f"data: {data['note']}", file=sys.stderr)
    if "metrics" in payload:
        for key, value in payload["metrics"].items():
            print(f"{key}: {_format(value)}")
    else:
        for key, spread in payload["summary"].items():
            print(f"{key}: {_format(spread['mean'])} ± {_format(spread['std'])} "
                  f"(min {_format(spread['min'])}, max {_format(spread['max'])})")
    print(f"{args.name} done in {payload['wall_s']:.1f} s; results: {payload['out_dir']}")
    if args.show and payload["figures"]:
        _show(payload["figures"])
    return 0
