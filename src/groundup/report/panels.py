"""The panels of one run: settings, curves, diagnostics, hints, evaluation (HTML fragments).

Each panel is a ``<section class="panel" id="...">`` whose data marks (SVG shapes, images,
table cells) carry ``class="mark"``. Read from the run directory only: ``config.json``,
``history.json`` (or, while training, ``checkpoint/state.json``), ``diagnostics.*`` and
``evaluation.*``.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from groundup import diagnostics, hints
from groundup.report.evaluation import read_evaluation
from groundup.report.svg import heatmap, image_grid, line_chart

__all__ = ["read_run", "run_panels", "panel", "best_epoch", "diagnostics_panels", "hints_panel",
           "positions", "read_json"]


def read_json(path: Path) -> Any:
    """A JSON file's value, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """What a report needs of one run: ``config``, ``history``, ``diagnostics``, ``npz``,
    ``evaluation``, ``evaluation_arrays`` (absent parts empty)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"report: no run directory {run_dir}")
    config = read_json(run_dir / "config.json") or {}
    history = read_json(run_dir / "history.json")
    if history is None:  # still training: the checkpoint holds the history so far
        state = read_json(run_dir / "checkpoint" / "state.json") or {}
        history = state.get("history") or {}
    try:
        summary, arrays = diagnostics.load(run_dir)
    except (FileNotFoundError, ValueError):
        summary, arrays = {}, {}
    if not history and summary:
        history = hints.history_of(summary)
    evaluation, eval_arrays = read_evaluation(run_dir)
    return {"name": run_dir.name, "dir": run_dir, "config": config, "history": history,
            "diagnostics": summary, "npz": arrays, "evaluation": evaluation,
            "evaluation_arrays": eval_arrays}


def panel(pid: str, title: str, body: str) -> str:
    return (f'<section class="panel" id="{escape(pid)}"><h3>{escape(title)}</h3>'
            f"{body}</section>")


def best_epoch(history: dict[str, list]) -> tuple[int, str] | None:
    """(1-based epoch, metric) of the lowest val_loss (else loss)."""
    for key in ("val_loss", "loss"):
        values = list(history.get(key) or [])
        finite = [(v, i) for i, v in enumerate(values) if v is not None and np.isfinite(v)]
        if finite:
            return min(finite)[1] + 1, key
    return None


SETTING_KEYS = ("model", "hidden", "dataset", "optimizer", "lr", "epochs", "batch_size",
                "weight_decay", "l1", "dropout", "batchnorm", "early_stopping", "seed", "fast",
                "diagnostics_every", "diagnostics_every_steps", "n_train", "n_val", "n_test")


def settings(config: dict[str, Any]) -> dict[str, Any]:
    shown = {k: config[k] for k in SETTING_KEYS if k in config}
    for key in ("optimizer_args", "schedule", "reduce_lr_on_plateau"):
        if config.get(key):
            shown[key] = config[key]
    return shown


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f'<tr><th>{escape(str(k))}</th><td class="mark">{escape(str(v))}</td></tr>'
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _curves(run: dict[str, Any], prefix: str) -> list[str]:
    history = run["history"]
    epochs = history.get("epoch") or list(range(1, len(history.get("loss") or []) + 1))
    marks = []
    best = best_epoch(history)
    if best:
        marks.append((best[0], f"best ({best[1]})"))
    restored = run["evaluation"].get("restored_epoch")
    if restored:
        marks.append((restored, "restored"))
    out = []
    for kind, title in (("loss", "loss"), ("accuracy", "accuracy")):
        series = [(key, epochs, history[key]) for key in history
                  if key.endswith(kind) and key != "epoch"]
        out.append(panel(f"{prefix}curves-{kind}", title,
                         line_chart(series, title=title, marks=marks)))
    return out


def positions(summary: dict[str, Any]) -> tuple[list[float], str]:
    """The points' x values and the axis' name: epochs, or iterations where the run counts
    single updates (the experiments')."""
    if summary.get("unit") == "iteration":
        return [p.get("step") for p in summary["points"]], "iteration"
    return [p["epoch"] for p in summary["points"]], "epoch"


def _per_point(summary: dict[str, Any], section: str, key: str,
               kinds: tuple[str, ...] | None = None) -> list[tuple[str, list, list]]:
    points = summary["points"]
    epochs = positions(summary)[0]
    names = list(points[-1][section]) if points else []
    series = []
    for name in names:
        if kinds and points[-1][section][name].get("kind") not in kinds:
            continue
        if section == "params" and not name.startswith("W"):
            continue
        values = [p[section].get(name, {}).get(key) for p in points]
        if any(v is not None for v in values):
            series.append((name, epochs, values))
    return series


def diagnostics_panels(run: dict[str, Any], prefix: str,
                       histogram_kinds: tuple[str, ...] | None = None) -> list[str]:
    """The diagnostics panels of one run; ``histogram_kinds``: draw the activation
    histograms of these layer kinds only (default every layer)."""
    summary, arrays = run["diagnostics"], run["npz"]
    if not summary or not summary.get("points"):
        return [panel(f"{prefix}diagnostics-missing", "diagnostics",
                      "<p>No diagnostics in this run: train with <code>--diagnostics</code>."
                      "</p>")]
    out = []
    acts = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "BatchNormalization")
    charts = [("activation-std", "activation std per layer", "layers", "std", acts, True),
              ("gradient-norms", "gradient norm ‖∇W‖ per layer", "params", "grad_norm",
               None, True),
              ("update-ratios", "update / weight ‖Δw‖/‖w‖ (last update)", "params",
               "update_ratio", None, True),
              ("dead-relu", "dead ReLU units (share)", "layers", "dead_fraction", ("Relu",),
               False),
              ("saturated", "saturated sigmoid / tanh (share)", "layers",
               "saturated_fraction", ("Sigmoid", "Tanh"), False)]
    xs, unit = positions(summary)
    for pid, title, section, key, kinds, log_y in charts:
        series = _per_point(summary, section, key, kinds)
        if series or pid in ("activation-std", "gradient-norms", "update-ratios"):
            out.append(panel(prefix + pid, title, line_chart(series, title=title,
                                                             log_y=log_y, x_label=unit)))
    epochs = [f"{x:g}" for x in xs]
    hists = []
    for name, stats in summary["points"][-1]["layers"].items():
        key = f"hist/activation/{name}"
        if key not in arrays or (histogram_kinds and stats["kind"] not in histogram_kinds):
            continue
        edges = arrays.get(f"edges/activation/{name}")
        counts = arrays[key].T[::-1]  # (bins, points), largest values on top
        labels = [f"{e:.2g}" for e in edges[:0:-1]] if edges is not None else []
        hists.append(heatmap(counts, title=name, x_labels=epochs, y_labels=labels,
                             x_label=unit, y_label="activation", log_scale=True))
    if hists:
        out.append(panel(prefix + "activation-histograms", "activation histograms over epochs",
                         f'<div class="grid">{"".join(hists)}</div>'))
    grads = []
    for name in summary["points"][-1]["params"]:
        key = f"hist/gradient/{name}"
        if not name.startswith("W") or key not in arrays:
            continue
        edges = arrays["log_grad_edges"]
        grads.append(heatmap(arrays[key].T[::-1], title=f"log10|∇{name}|", x_labels=epochs,
                             y_labels=[f"{e:.0f}" for e in edges[:0:-1]], x_label=unit,
                             log_scale=True))
    if grads:
        out.append(panel(prefix + "gradient-histograms", "gradient histograms over epochs",
                         f'<div class="grid">{"".join(grads)}</div>'))
    first, ln_c = summary["points"][0], summary.get("ln_classes")
    if ln_c:
        loss0 = first.get("train_mode_loss", first.get("loss"))
        shown = "not finite" if loss0 is None else f"{loss0:.4f}"
        out.append(panel(prefix + "initial-loss", "initial loss",
                         _table([("probe loss at the start (training step)", shown),
                                 (f"ln({summary['classes']})", f"{ln_c:.4f}")])))
    out += _conv_pictures(arrays, prefix)
    return out


def _conv_pictures(arrays: dict[str, np.ndarray], prefix: str) -> list[str]:
    if "image/filters" not in arrays:
        return []
    out = []
    for key, title in (("image/filters_initial", "first-layer filters, start"),
                       ("image/filters", "first-layer filters, latest")):
        filters = arrays[key]
        out.append(panel(prefix + key.split("/")[1].replace("_", "-"), title,
                         image_grid([(f[0], str(i)) for i, f in enumerate(filters)], scale=6)))
    maps = arrays["image/feature_maps"]
    probe = arrays["image/probe_image"]
    cells = [(probe.reshape(probe.shape[-2:]), "input")]
    cells += [(m, str(i)) for i, m in enumerate(maps)]
    out.append(panel(prefix + "feature-maps", "feature maps of one probe image",
                     image_grid(cells, scale=2)))
    return out


def hints_panel(run: dict[str, Any], prefix: str) -> str:
    found = hints.hints(run["diagnostics"], run["history"]) if run["diagnostics"] else []
    if not found:
        body = '<p class="mark">No hint: nothing in the diagnostics looks wrong.</p>'
    else:
        body = "<ul>" + "".join(f'<li class="mark hint" data-rule="{h.rule}">'
                                f"{escape(h.line())}</li>" for h in found) + "</ul>"
    return panel(prefix + "hints", "hints", body)


def _evaluation(run: dict[str, Any], prefix: str) -> list[str]:
    summary, arrays = run["evaluation"], run["evaluation_arrays"]
    if not summary:
        return []
    confusion = np.asarray(summary["confusion"])
    labels = [str(i) for i in range(len(confusion))]
    out = [panel(prefix + "confusion", f"confusion matrix ({summary['split']}, accuracy "
                 f"{summary['accuracy']:.4f})",
                 heatmap(confusion, title="true (rows) vs predicted (columns)",
                         x_labels=labels, y_labels=labels, x_label="predicted",
                         y_label="true", numbers=True, cell=26))]
    images = arrays.get("images")
    if images is not None and len(images) and images.ndim == 3:
        cells = [(img, f"{m['label']}→{m['predicted']} ({m['probability']:.0%})")
                 for img, m in zip(images, summary["misclassified"], strict=False)]
        out.append(panel(prefix + "misclassified", "misclassified test images "
                         "(true→predicted)", image_grid(cells, scale=2)))
    return out


def run_panels(run: dict[str, Any], prefix: str = "") -> str:
    """Every panel of one run, as HTML."""
    parts = [panel(prefix + "settings", "settings",
                   _table(list(settings(run["config"]).items()) or [("run", run["name"])]))]
    parts += _curves(run, prefix)
    parts.append(hints_panel(run, prefix))
    parts += diagnostics_panels(run, prefix)
    parts += _evaluation(run, prefix)
    return "\n".join(parts)
