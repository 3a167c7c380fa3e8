"""``groundup report``: one self-contained HTML file for one run or a comparison of several
(or one experiment run: :mod:`.experiment`).

The file needs nothing but itself: charts are inline SVG drawn by :mod:`.svg`, images are
``data:`` URIs, the style sheet is inline; there is no script, no font and no address of
another host, so it opens from ``file://`` with no network.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from groundup.io import write_text_atomic
from groundup.report.experiment import experiment_body, is_experiment_run
from groundup.report.panels import panel, read_run, run_panels, settings
from groundup.report.svg import line_chart

__all__ = ["build_report", "write_report", "STYLE"]

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 0 0 .4em 0; }
.panels { display: flex; flex-wrap: wrap; gap: 12px; }
.panel { background: #fff; border: 1px solid #ddd; padding: 8px; max-width: 100%; }
.grid { display: flex; flex-wrap: wrap; gap: 6px; }
figure.cell { margin: 0; text-align: center; font-size: 10px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
li.hint { margin-bottom: .3em; }
"""


def page(title: str, body: str, head: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style>{head}</head>"
            f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def _comparison(runs: list[dict[str, Any]]) -> str:
    shown = [settings(r["config"]) for r in runs]
    keys = sorted({k for s in shown for k in s})
    differ = [k for k in keys if len({repr(s.get(k)) for s in shown}) > 1]
    head = "".join(f"<th>{escape(r['name'])}</th>" for r in runs)
    rows = "".join(f"<tr><th>{escape(k)}</th>" + "".join(
        f'<td class="mark">{escape(str(s.get(k, "")))}</td>' for s in shown) + "</tr>"
        for k in differ) or '<tr><td class="mark" colspan="99">no setting differs</td></tr>'
    parts = [panel("compare-settings", "settings that differ",
                   f"<table><tr><th>setting</th>{head}</tr>{rows}</table>")]
    for key in ("loss", "val_loss", "val_accuracy", "train_accuracy"):
        series = []
        for r in runs:
            values = r["history"].get(key)
            if values:
                series.append((r["name"], list(range(1, len(values) + 1)), values))
        if series:
            parts.append(panel(f"compare-{key.replace('_', '-')}", f"{key}, all runs",
                               line_chart(series, title=key)))
    return f'<h2>comparison</h2><div class="panels">{"".join(parts)}</div>'


def build_report(run_dirs: list[str | Path]) -> str:
    """The HTML text of the report of ``run_dirs`` (one run, or several compared; or one
    experiment run)."""
    experiment_runs = [d for d in run_dirs if is_experiment_run(d)]
    if experiment_runs:
        if len(run_dirs) > 1:
            raise ValueError(f"report: {experiment_runs[0]} is an experiment run, reported "
                             "on its own; give it alone (runs of groundup train can be "
                             "compared)")
        return page(*experiment_body(run_dirs[0]))
    runs = [read_run(d) for d in run_dirs]
    if len(runs) == 1:
        body = f'<div class="panels">{run_panels(runs[0])}</div>'
        return page(f"groundup run {runs[0]['name']}", body)
    sections = [_comparison(runs)]
    for i, run in enumerate(runs, 1):
        sections.append(f'<h2 id="run{i}">{escape(run["name"])}</h2><div class="panels">'
                        f"{run_panels(run, prefix=f'run{i}-')}</div>")
    return page(f"groundup: {len(runs)} runs compared", "\n".join(sections))


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (atomically)."""
    return write_text_atomic(out, build_report(run_dirs))
