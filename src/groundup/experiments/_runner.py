"""Run an experiment for one or several seeds and write ``config.json``, ``results.json``,
``timing.json`` and ``figures/*.png``.

``results.json`` depends only on the configuration and the seeds (same seed, same machine,
same file); wall times live in ``timing.json``. With several seeds the seeds run in worker
processes when there are cores for them, and ``results.json`` adds, for every metric, the
mean, standard deviation, minimum and maximum over seeds; ``figures/seeds_bands.png`` draws
every curve as mean ± one standard deviation (shaded) with the min–max range (dotted), and
``figures/seeds_table.png`` the table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from groundup import __version__, _files
from groundup._checks import check_number, suggest, value_error
from groundup.experiments._common import jsonable, progress, progress_to
from groundup.experiments._diagnostics import diagnostics_to
from groundup.io import write_text_atomic

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_scalar(owner: str, key: str, text: str, kind: type) -> Any:
    text = text.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise value_error(owner, f"--set {key}", "true or false", text)
    try:
        return kind(text)
    except ValueError as exc:
        raise value_error(owner, f"--set {key}", f"a {kind.__name__}", text) from exc


def _parse_value(owner: str, key: str, text: str, default: Any) -> Any:
    if isinstance(default, tuple):
        kind = type(default[0]) if default else str
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise value_error(owner, f"--set {key}", "a comma-separated list", text)
        return tuple(_parse_scalar(owner, key, p, kind) for p in parts)
    kind = type(default)
    if kind is int and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError as exc:
            raise value_error(owner, f"--set {key}", "an int", text) from exc
    if kind is float:
        return _parse_scalar(owner, key, text, float)
    return _parse_scalar(owner, key, text, kind)


def build_config(name: str, *, seed: int | None = None, dataset: str | None = None,
                 quick: bool = False, sets: list[str] | tuple[str, ...] = ()) -> Any:
    """The experiment's ``Config``: book defaults, then ``QUICK`` when ``quick``, then
    ``--seed``/``--dataset``, then the ``key=value`` strings of ``sets`` (which win).

    Raises:
        ValueError: an unknown name or key (listing the valid ones) or an invalid value.
    """
    from groundup import experiments

    module = experiments.get(name)
    owner = f"experiment {name}"
    defaults = module.Config()
    fields = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
    values: dict[str, Any] = dict(module.QUICK) if quick else {}
    if seed is not None:
        check_number(owner, "--seed", seed, low=0, integer=True)
        values["seed"] = seed
    if dataset is not None:
        if "dataset" not in fields:
            raise value_error(owner, "--dataset", "left out (this experiment uses no data set)",
                              dataset)
        values["dataset"] = dataset
    for item in sets:
        if not isinstance(item, str) or "=" not in item:
            raise value_error(owner, "--set", "KEY=VALUE", item, "e.g. --set epochs=5.")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise value_error(owner, "--set key", "a field of the config", key,
                              suggest(key, fields))
        values[key] = _parse_value(owner, key, text, fields[key])
    return dataclasses.replace(defaults, **values)


def _run_one(name: str, config: Any, log: Any = None,
             run_dir: str | None = None) -> tuple[dict[str, Any], dict[str, float], float]:
    """One seed. ``log``: the progress stream, or in a worker process a bool (True: its
    own stderr, which is the parent's terminal). ``run_dir``: where the arms' diagnostics
    go (``diagnostics/seed-<seed>/``), for the experiments that record them."""
    from groundup import experiments

    module = experiments.get(name)
    stream = (sys.stderr if log else None) if isinstance(log, bool) else log
    started = time.perf_counter()
    where = None if run_dir is None else Path(run_dir) / "diagnostics" / f"seed-{config.seed}"
    # diverging arms (std 1 without batch norm, a large lr) are part of the findings
    with (np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"),
          progress_to(stream, f"  seed {config.seed}: "), diagnostics_to(where)):
        progress("started")
        results = jsonable(module.run(config))
        metrics = jsonable(module.metrics(results))
        wall = time.perf_counter() - started
        progress(f"done in {wall:.1f} s")
    return results, metrics, wall


def _spread(values: list[float | None]) -> dict[str, Any]:
    finite = np.array([v for v in values if v is not None], dtype=np.float64)
    if finite.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "values": values}
    return {"mean": float(finite.mean()), "std": float(finite.std(ddof=1)) if finite.size > 1
            else 0.0, "min": float(finite.min()), "max": float(finite.max()), "values": values}


def _curve_bands(all_curves: list[dict[str, Any]]) -> dict[str, Any]:
    bands: dict[str, Any] = {}
    for panel, spec in all_curves[0].items():
        series = {}
        for label in spec["series"]:
            rows = [c[panel]["series"][label] for c in all_curves]
            length = min(len(r) for r in rows)
            stack = np.array([[np.nan if v is None else v for v in r[:length]] for r in rows],
                             dtype=np.float64)
            with np.errstate(all="ignore"), _quiet_nan():
                series[label] = {"mean": np.nanmean(stack, axis=0),
                                 "std": np.nanstd(stack, axis=0, ddof=1),
                                 "min": np.nanmin(stack, axis=0),
                                 "max": np.nanmax(stack, axis=0)}
        bands[panel] = {k: v for k, v in spec.items() if k != "series"}
        bands[panel]["series"] = series
    return jsonable(bands)


class _quiet_nan:
    """Silence numpy's all-NaN-slice warnings (a diverged arm in every seed)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _write_json(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(jsonable(payload), indent=1, allow_nan=False) + "\n")


def _map_seeds(name: str, configs: list[Any], workers: int, log: Any,
               run_dir: str) -> list[tuple]:
    if workers <= 1 or len(configs) == 1:
        return [_run_one(name, c, log, run_dir) for c in configs]
    from groundup.search.pool import blas_threads_env

    threads = max(1, (os.cpu_count() or 1) // workers)
    with (blas_threads_env(threads),
          ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool):
        # a stream cannot cross into a worker: it reports on its own stderr, or not at all
        return list(pool.map(_run_one, [name] * len(configs), configs,
                             [log is not None] * len(configs), [run_dir] * len(configs)))


# What an experiment run writes: what --overwrite may replace.
OUTPUTS = ("config.json", "results.json", "timing.json", "figures", "diagnostics",
           "report.html")


def run_experiment(name: str, *, seed: int = 0, seeds: int = 1, dataset: str | None = None,
                   out: str | os.PathLike | None = None, quick: bool = False,
                   sets: list[str] | tuple[str, ...] = (), workers: int | None = None,
                   figures: bool = True, log: Any = True,
                   overwrite: bool = False) -> dict[str, Any]:
    """Run experiment ``name`` for seeds ``seed, seed+1, …, seed+seeds-1``; write the run
    directory and return what ``results.json`` holds (plus ``out_dir`` and ``wall_s``).

    Args:
        name: one of ``groundup.experiments.names()``.
        seed: the first seed.
        seeds: how many seeds (≥ 1).
        dataset: ``mnist`` (falls back to the bundled sample when offline),
            ``fashion-mnist`` or ``mnist-sample``.
        out: run directory (default ``runs/experiment-<name>-<time>``).
        quick: shrink the run to seconds (``QUICK`` overrides).
        sets: ``key=value`` overrides of config fields.
        workers: processes for the seeds (default min(seeds, cores)).
        figures: draw ``figures/*.png`` (needs matplotlib).
        log: where progress lines go, one per seed, variant and epoch (at most about one
            a second per seed); True (the default): ``sys.stderr`` as it is at the call;
            None: nowhere. Seeds run in worker processes report on their own stderr.
        overwrite: replace an earlier experiment run in ``out`` (else ``out`` must be new
            or empty).
    """
    from groundup import experiments

    if log is True:  # looked up now: a default bound at import would keep a stale stream
        log = sys.stderr

    module = experiments.get(name)
    owner = f"experiment {name}"
    check_number(owner, "--seeds", seeds, low=1, integer=True)
    config = build_config(name, seed=seed, dataset=dataset, quick=quick, sets=sets)
    if workers is None:
        workers = min(seeds, os.cpu_count() or 1)
    check_number(owner, "--workers", workers, low=1, integer=True)
    run_dir = Path(out) if out is not None else Path(
        f"runs/experiment-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.exists() and not run_dir.is_dir():
        raise value_error(owner, "--out", "a directory", str(run_dir))
    _files.claim_output(owner, run_dir, OUTPUTS, overwrite)
    _files.output_dir(owner, run_dir / "figures")
    seed_list = [config.seed + k for k in range(seeds)]
    configs = [dataclasses.replace(config, seed=s) for s in seed_list]
    _write_json(run_dir / "config.json", {
        "experiment": name, "description": module.DESCRIPTION, "quick": quick,
        "seeds": seed_list, "config": dataclasses.asdict(config), "argv": sys.argv[1:],
        "versions": {"groundup": __version__, "numpy": np.__version__,
                     "python": platform.python_version()}})
    if log is not None:
        print(f"experiment {name}: {'quick, ' if quick else ''}seed{'s' if seeds > 1 else ''} "
              f"{', '.join(map(str, seed_list))} -> {run_dir}", file=log)
    started = time.perf_counter()
    outputs = _map_seeds(name, configs, workers, log, str(run_dir))
    wall = time.perf_counter() - started
    first = outputs[0][0]
    payload: dict[str, Any] = {"experiment": name, "quick": quick, "seeds": seed_list}
    if "data" in first:
        payload["data"] = first["data"]
    if seeds == 1:
        payload["metrics"] = outputs[0][1]
        payload["results"] = first
    else:
        keys = list(outputs[0][1])
        payload["summary"] = {k: _spread([o[1].get(k) for o in outputs]) for k in keys}
        payload["per_seed"] = [{"seed": s, "metrics": o[1], "results": o[0]}
                               for s, o in zip(seed_list, outputs, strict=True)]
        curves = [module.curves(o[0]) for o in outputs]
        if curves[0]:
            payload["bands"] = _curve_bands(curves)
    _write_json(run_dir / "results.json", payload)
    _write_json(run_dir / "timing.json", {"wall_s": wall, "per_seed_s": [o[2] for o in outputs],
                                          "workers": workers})
    figure_paths: list[Path] = []
    if figures:
        figure_paths = list(module.plot(first, run_dir / "figures"))
        if seeds > 1:
            from groundup.experiments import _seedplots

            figure_paths += _seedplots.plot_seeds(payload, run_dir / "figures")
    payload["out_dir"] = str(run_dir)
    payload["wall_s"] = wall
    payload["figures"] = [str(p) for p in figure_paths]
    return payload


def plot_run(run_dir: str | os.PathLike) -> list[Path]:
    """Redraw ``figures/*.png`` of a finished run from its ``results.json`` (no training)."""
    from groundup import experiments

    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise value_error("experiment plot", "DIR", "a run directory holding results.json",
                          str(run_dir))
    payload = json.loads(path.read_text(encoding="utf-8"))
    module = experiments.get(payload.get("experiment", ""))
    first = payload["results"] if "results" in payload else payload["per_seed"][0]["results"]
    paths = list(module.plot(first, run_dir / "figures"))
    if "per_seed" in payload:
        from groundup.experiments import _seedplots

        paths += _seedplots.plot_seeds(payload, run_dir / "figures")
    return paths
