"""Diagnostics of the experiments' arms and the report of an experiment run (real MNIST
digits, real chromium): std 0.01's activations vanish where He's stay spread, batch norm
keeps them spread, and the hints say so."""

import json
import re

import pytest

from browser_helpers import dump_dom
from groundup import diagnostics, hints
from groundup.cli import main
from groundup.experiments import _diagnostics, run_experiment
from test_report import panels


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    out = {}
    for name, sets in (("weight-init-compare", []), ("batch-norm", ["epochs=4"])):
        out[name] = root / name
        run_experiment(name, quick=True, sets=sets, out=out[name], log=None)
    return out


def _arms(run_dir):
    return {label: diagnostics.load(d)[0]
            for label, d in _diagnostics.arms(run_dir)["seed-0"].items()}


def _relu_std(summary, index=0):
    return [s["std"] for s in summary["points"][index]["layers"].values()
            if s["kind"] == "Relu"]


def test_weight_init_compare_records_each_init_and_std_001_vanishes(runs):
    arms = _arms(runs["weight-init-compare"])
    assert list(arms) == ["std=0.01", "Xavier", "He"]
    assert [p["step"] for p in arms["He"]["points"]] == [0, 100, 200, 300, 400, 500]
    small, he = _relu_std(arms["std=0.01"]), _relu_std(arms["He"])
    # the book's 6.2.2 pictures: std 0.01's last hidden layer is ~1e-4 of He's; He stays even
    assert small[-1] < 1e-3 * he[-1]
    assert min(he) > 0.5 * max(he)
    for label in ("std=0.01", "He"):  # the output scores (layer 5) too
        arms[label]["out"] = arms[label]["points"][0]["layers"]["Affine5"]["std"]
    assert arms["std=0.01"]["out"] < 1e-3 * arms["He"]["out"]
    found = {label: {h.rule for h in hints.hints(s)} for label, s in arms.items()}
    assert "vanishing" in found["std=0.01"]
    assert "vanishing" not in found["He"] and "vanishing" not in found["Xavier"]
    line = next(h.line() for h in hints.hints(arms["std=0.01"]) if h.rule == "vanishing")
    assert "He" in line and "6.2.2" in line


def test_batch_norm_keeps_the_spread_that_vanishes_without_it(runs):
    arms = _arms(runs["batch-norm"])
    assert len(arms) == 8
    # std 1 without batch norm diverges in its first epoch; the others have every epoch
    diverged = arms.pop("std 1, no batch norm")
    assert len(diverged["points"]) == 1 and diverged["points"][0]["diverged_after"]["step"] <= 10
    assert "non_finite" in {h.rule for h in hints.hints(diverged)}
    assert all(len(s["points"]) == 5 for s in arms.values())
    small = [label for label in arms if label.startswith("std 0.0014")]
    with_bn, without = (arms[label] for label in sorted(small))
    assert min(_relu_std(with_bn)) > 0.3  # normalized: relu(N(0, 1)) has std 0.58
    assert _relu_std(without)[-1] < 1e-6
    assert "vanishing" in {h.rule for h in hints.hints(without)}
    assert "vanishing" not in {h.rule for h in hints.hints(with_bn)}


def test_diagnostics_change_no_experiment_result(runs, tmp_path):
    off = run_experiment("weight-init-compare", quick=True, sets=["diagnostics=false"],
                         out=tmp_path / "off", log=None, figures=False)
    on = json.loads((runs["weight-init-compare"] / "results.json").read_text())
    assert off["results"] == on["results"]
    assert not (tmp_path / "off" / "diagnostics").exists()


def test_experiment_report_in_the_browser(runs):
    for name, run_dir in runs.items():
        assert main(["report", str(run_dir)]) == 0
        html = (run_dir / "report.html").read_text(encoding="utf-8")
        assert not re.search(r"https?://", html) and "<script" not in html
        found = panels(dump_dom((run_dir / "report.html").as_uri()))
        for pid in ("settings", "book", "figures", "arms-activation-std-start",
                    "arms-activation-std-end", "arms-hints", "arm1-hints",
                    "arm1-activation-std", "arm1-activation-histograms", "arm2-gradient-norms"):
            assert found.get(pid, 0) > 0, f"{name}: panel {pid} missing or without data"
        assert "book:" in html and "no result stated" not in html
    html = (runs["weight-init-compare"] / "report.html").read_text(encoding="utf-8")
    hints_table = html.split('id="arms-hints"')[1].split("</table>")[0]
    assert re.search(r"std=0.01</td><td class=\"mark\">[^<]*vanishing", hints_table)


def test_experiment_report_with_seeds_shows_the_spread(tmp_path):
    run_experiment("weight-init-compare", seeds=2, workers=1, quick=True,
                   sets=["iters=40", "diagnostics_every=20"], out=tmp_path, log=None)
    assert sorted(_diagnostics.arms(tmp_path)) == ["seed-0", "seed-1"]
    assert main(["report", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "over 2 seeds" in html and "seeds_bands.png" in html
    assert main(["report", str(tmp_path), str(tmp_path)]) == 2  # experiment runs: one at a time
