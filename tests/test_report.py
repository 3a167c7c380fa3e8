"""``groundup report``: a self-contained HTML file, checked as text and in real chromium."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from browser_helpers import DevTools, dump_dom
from groundup.cli import main
from groundup.report import build_report

RUN_PANELS = ("settings", "curves-loss", "curves-accuracy", "hints", "activation-std",
              "gradient-norms", "update-ratios", "dead-relu", "activation-histograms",
              "gradient-histograms", "initial-loss", "confusion", "misclassified")
CONV_PANELS = ("filters-initial", "filters", "feature-maps")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mlp, conv = root / "mlp", root / "conv"
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "2", "--diagnostics",
                 "--out", str(mlp)]) == 0
    assert main(["train", "--dataset", "mnist-sample", "--model", "convnet", "--hidden", "30",
                 "--epochs", "1", "--diagnostics", "--lr", "0.005", "--out", str(conv)]) == 0
    return mlp, conv


class Panels(HTMLParser):
    """``{panel id: number of class="mark" elements inside it}``."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, int] = {}
        self.stack: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "section" and "panel" in classes:
            self.marks[attrs["id"]] = 0
            self.stack.append(attrs["id"])
        elif tag == "section":
            self.stack.append(None)
        if "mark" in classes:
            for pid in self.stack:
                if pid:
                    self.marks[pid] += 1

    def handle_endtag(self, tag):
        if tag == "section" and self.stack:
            self.stack.pop()


def panels(html: str) -> dict[str, int]:
    parser = Panels()
    parser.feed(html)
    return parser.marks


def test_report_is_self_contained(runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", *map(str, runs), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "an address of another host"
    assert "<script" not in text and "@import" not in text and "url(" not in text
    assert re.findall(r'src="([a-z]+):', text) and set(re.findall(r'src="([a-z]+):', text)) \
        == {"data"}


def test_report_panels_in_the_browser_dom(runs, tmp_path):
    mlp, conv = runs
    for run, expected in ((mlp, RUN_PANELS), (conv, RUN_PANELS + CONV_PANELS)):
        assert main(["report", str(run)]) == 0
        found = panels(dump_dom((run / "report.html").as_uri()))
        for pid in expected:
            assert found.get(pid, 0) > 0, f"panel {pid} missing or without data in {run}"
        assert all(count > 0 for count in found.values()), found


def test_report_compares_runs(runs, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["report", *map(str, runs), "-o", str(out)]) == 0
    found = panels(dump_dom(out.as_uri()))
    for pid in ("compare-settings", "compare-loss", "compare-val-accuracy", "run1-settings",
                "run2-feature-maps", "run1-hints"):
        assert found.get(pid, 0) > 0, pid
    table = out.read_text(encoding="utf-8").split('id="compare-settings"')[1].split("</table>")[0]
    assert "<th>model</th>" in table and "<th>seed</th>" not in table


def test_report_screenshot_charts_are_not_blank(runs, tmp_path):
    from matplotlib import image

    mlp, conv = runs
    assert main(["report", str(conv)]) == 0
    browser = DevTools((conv / "report.html").as_uri(), height=1600)
    try:
        assert browser.wait_for("document.readyState === 'complete'", 20)
        boxes = browser.evaluate(
            "[...document.querySelectorAll('.panel svg, .panel img')].map(e => {"
            "const r = e.getBoundingClientRect(); return [e.closest('.panel').id, "
            "r.x + scrollX, r.y + scrollY, r.width, r.height]; })")
        (tmp_path / "shot.png").write_bytes(browser.screenshot_png())
    finally:
        browser.close()
    pixels = image.imread(tmp_path / "shot.png")[..., :3]
    assert len(boxes) > 20
    for pid, x, y, w, h in boxes:
        region = pixels[int(y):int(y + h), int(x):int(x + w)]
        assert region.size and np.std(region) > 0.01, f"blank chart in panel {pid}"


def test_report_of_a_run_without_diagnostics(tmp_path):
    run = tmp_path / "plain"
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--out", str(run)]) == 0
    found = panels(build_report([run]))
    assert found["diagnostics-missing"] == 0 and found["curves-loss"] > 0
    assert main(["report", str(tmp_path / "none")]) == 2
