"""``SearchResult``: every trial of a search, its best trial, and the run-directory files
``trials.csv``, ``trials.json`` and ``best.json``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from groundup._checks import value_error
from groundup.io import write_text_atomic
from groundup.search.space import OWNER, SearchSpace


class SearchResult:
    """The trials of a search (dicts with ``number``, ``params``, ``score``, ``state``,
    ``history``, ...) in trial-number order, and the settings that produced them."""

    def __init__(self, trials: list[dict[str, Any]], space: SearchSpace,
                 settings: dict[str, Any] | None = None) -> None:
        self.trials = sorted(trials, key=lambda t: t["number"])
        self.space = space
        self.settings = dict(settings or {})

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["state"] == "COMPLETE"]

    @property
    def best(self) -> dict[str, Any] | None:
        """The COMPLETE trial with the highest score (lowest number on ties)."""
        done = self.completed
        return max(done, key=lambda t: (t["score"], -t["number"])) if done else None

    def ranked(self, states: tuple[str, ...] = ("COMPLETE",)) -> list[dict[str, Any]]:
        """Trials in ``states``, best score first."""
        chosen = [t for t in self.trials if t["state"] in states]
        return sorted(chosen, key=lambda t: (-t["score"], t["number"]))

    def total_epochs(self) -> int:
        """Training epochs spent over all trials (the search's cost)."""
        return int(sum(t.get("epochs_run", 0) for t in self.trials))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "settings": self.settings,
                "trials": self.trials, "best": self.best, "total_epochs": self.total_epochs()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        return cls(data["trials"], SearchSpace.from_dict(data["space"]), data.get("settings"))

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> SearchResult:
        path = Path(run_dir) / "trials.json"
        if not path.is_file():
            raise value_error(OWNER, "--out", "a search run directory holding trials.json",
                              str(run_dir), "run without --resume to start a new search.")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Write ``trials.csv`` (one row per trial), ``trials.json`` (everything, curves
        included) and ``best.json`` into ``run_dir``."""
        run_dir = Path(run_dir)
        names = list(self.space.params)
        for trial in self.trials:
            names += [k for k in trial["params"] if k not in names]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["number", "state", "score", *names, "epochs_run", "seed",
                         "duration_s"])
        for t in self.trials:
            writer.writerow([t["number"], t["state"], f"{t['score']:.6g}",
                             *(t["params"].get(n, "") for n in names), t.get("epochs_run", 0),
                             t.get("seed", ""), f"{t.get('duration_s', 0.0):.3f}"])
        write_text_atomic(run_dir / "trials.csv", buffer.getvalue())
        write_text_atomic(run_dir / "trials.json", json.dumps(self.to_dict(), indent=1) + "\n")
        best = {"best": self.best, "space": self.space.specs(), "settings": self.settings,
                "trials_complete": len(self.completed), "trials_total": len(self.trials),
                "total_epochs": self.total_epochs()}
        write_text_atomic(run_dir / "best.json", json.dumps(best, indent=2) + "\n")
        return run_dir
