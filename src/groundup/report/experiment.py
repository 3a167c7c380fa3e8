"""The report of an experiment run (``groundup experiment run NAME``): its settings, the
book's result beside ours (one seed, or mean ± std over seeds), its figures (seed bands
included) and, for the experiments that record them, each arm's per-layer diagnostics with
an overview that puts the arms side by side (docs/diagnostics.md).

Read from the run directory only: ``config.json``, ``results.json``, ``figures/*.png``,
``diagnostics/seed-<seed>/<arm>/diagnostics.*``.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from groundup import diagnostics, hints
from groundup.experiments import _diagnostics
from groundup.report.panels import diagnostics_panels, hints_panel, panel, read_json
from groundup.report.svg import line_chart

__all__ = ["is_experiment_run", "experiment_body"]

ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu")


def is_experiment_run(run_dir: str | Path) -> bool:
    """A directory written by ``experiment run`` (``results.json`` naming an experiment)."""
    results = read_json(Path(run_dir) / "results.json")
    return isinstance(results, dict) and "experiment" in results


def _table(head: list[str], rows: list[list[str]]) -> str:
    top = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="mark">{escape(c)}</td>' for c in row)
                   + "</tr>" for row in rows)
    return f"<table><tr>{top}</tr>{body}</table>"


def _number(value: Any) -> str:
    return "not finite" if value is None else f"{value:.4g}"


def _ours(results: dict[str, Any]) -> list[list[str]]:
    """(metric, ours) rows: the value of one seed, or mean ± std [min, max] over seeds."""
    if "metrics" in results:
        return [[k, _number(v)] for k, v in results["metrics"].items()]
    rows = []
    for key, s in results.get("summary", {}).items():
        shown = "not finite" if s["mean"] is None else (
            f"{s['mean']:.4g} ± {s['std']:.2g} [{s['min']:.4g}, {s['max']:.4g}]")
        rows.append([key, shown])
    return rows


def _figures(run_dir: Path) -> str:
    cells = []
    for path in sorted((run_dir / "figures").glob("*.png")):
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cells.append(f'<figure class="cell"><img class="mark" alt="{escape(path.name)}" '
                     f'style="max-width:860px" src="data:image/png;base64,{data}">'
                     f"<figcaption>{escape(path.name)}</figcaption></figure>")
    return "".join(cells) or "<p>No figures (the run was made without them).</p>"


def _layer_std(summary: dict[str, Any], index: int) -> tuple[list[int], list[float | None]]:
    point = summary["points"][index]
    stds = [s["std"] for s in point["layers"].values() if s["kind"] in ACTIVATIONS]
    return list(range(1, len(stds) + 1)), stds


def _overview(arms: dict[str, dict[str, Any]]) -> list[str]:
    """The arms side by side: each activation layer's std at the start and at the end."""
    out = []
    for index, when, pid in ((0, "at the start", "arms-activation-std-start"),
                             (-1, "at the end", "arms-activation-std-end")):
        series = [(label, *_layer_std(arm["diagnostics"], index))
                  for label, arm in arms.items()]
        depth = max((len(xs) for _, xs, _ in series), default=0)
        ticks = [(k, str(k)) for k in range(1, depth + 1)]
        title = f"activation std per hidden layer, {when}"
        out.append(panel(pid, title, line_chart(series, title=title, x_label="hidden layer",
                                                log_y=True, legend=170, x_ticks=ticks)))
    rows = []
    for label, arm in arms.items():
        found = hints.hints(arm["diagnostics"], arm["history"])
        rows.append([label, "; ".join(h.rule for h in found) or "none"])
    out.append(panel("arms-hints", "hints per arm", _table(["arm", "hints"], rows)))
    return out


def _arms(run_dir: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """(seed directory name, {arm label: a run dict for the panels}) of the first seed."""
    recorded = _diagnostics.arms(run_dir)
    if not recorded:
        return "", {}
    seed, dirs = next(iter(recorded.items()))
    arms = {}
    for label, directory in dirs.items():
        summary, arrays = diagnostics.load(directory)
        arms[label] = {"diagnostics": summary, "npz": arrays,
                       "history": hints.history_of(summary)}
    return seed, arms


def experiment_body(run_dir: str | Path) -> tuple[str, str]:
    """(title, HTML body) of the report of one experiment run."""
    from groundup import experiments

    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json") or {}
    config = read_json(run_dir / "config.json") or {}
    name = results.get("experiment", "")
    try:
        book = getattr(experiments.get(name), "BOOK", None)
    except ValueError:
        book = None
    seeds = results.get("seeds") or config.get("seeds") or []
    settings = [["experiment", name], ["description", str(config.get("description", ""))],
                ["seeds", ", ".join(map(str, seeds))], ["quick", str(results.get("quick"))]]
    settings += [[k, v if isinstance(v, str) else json.dumps(v)]
                 for k, v in (config.get("config") or {}).items()]
    spread = f"mean ± std [min, max] over {len(seeds)} seeds" if len(seeds) > 1 else "seed " \
        + ", ".join(map(str, seeds))
    parts = [panel("settings", "settings", _table(["setting", "value"], settings)),
             panel("book", "the book's result beside ours",
                   f'<p class="mark">book: {escape(book or "no result stated")}</p>'
                   + _table(["metric", f"ours ({spread})"], _ours(results))),
             panel("figures", "figures", f'<div class="grid">{_figures(run_dir)}</div>')]
    body = [f'<div class="panels">{"".join(parts)}</div>']
    seed, arms = _arms(run_dir)
    if arms:
        body.append(f"<h2>diagnostics of each arm ({escape(seed)})</h2>"
                    f'<div class="panels">{"".join(_overview(arms))}</div>')
        for i, (label, arm) in enumerate(arms.items(), 1):
            prefix = f"arm{i}-"
            inner = hints_panel(arm, prefix) + "".join(
                diagnostics_panels(arm, prefix, histogram_kinds=ACTIVATIONS))
            body.append(f'<h2 id="arm{i}">{escape(label)}</h2><div class="panels">{inner}</div>')
    return f"groundup experiment {name} ({run_dir.name})", "\n".join(body)
