"""``groundup report RUN_DIR [RUN_DIR ...] [-o report.html]``: a self-contained HTML report.

One run: its settings, curves, hints, per-layer diagnostics and test evaluation. Several:
a table of the settings that differ and the curves overlaid, then each run's panels. The
file opens from ``file://`` and needs no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of runs",
                       description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="directories written by groundup train")
    p.add_argument("-o", "--out", default=None,
                   help="the HTML file (default RUN_DIR/report.html for one run, "
                        "report.html for several)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from groundup import _files
    from groundup.report import write_report

    for run_dir in args.run_dirs:
        if not Path(run_dir).is_dir():
            raise FileNotFoundError(f"no run directory {run_dir}; give directories written "
                                    "by groundup train")
    default = Path(args.run_dirs[0]) / "report.html" if len(args.run_dirs) == 1 \
        else Path("report.html")
    out = _files.output_file("report", args.out or default)
    write_report(args.run_dirs, out)
    print(f"report: {out}")
    return 0
