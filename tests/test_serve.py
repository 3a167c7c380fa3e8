"""``groundup serve``: what it serves, what it refuses, and a live page in real chromium."""

import http.client
import json
import threading
import time

import numpy as np
import pytest

from browser_helpers import DevTools
from groundup.callbacks import Callback, JSONLogger
from groundup.data import load_mnist_sample
from groundup.diagnostics import Diagnostics
from groundup.models import Sequential
from groundup.optimizers import Adam
from groundup.report.server import find_runs, make_server
from groundup.train import Trainer


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "history.json").write_text(json.dumps({"epoch": [1], "loss": [0.5]}))
    (root / "a" / "config.json").write_text(json.dumps({"command": "train", "model": "mlp"}))
    (tmp_path / "secret.txt").write_text("top secret")
    server = make_server(root, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)  # sent as written: no client-side normalization
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_serve_binds_localhost_by_default(tmp_path):
    server = make_server(tmp_path, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    with pytest.raises(FileNotFoundError, match="serve: no directory"):
        make_server(tmp_path / "missing", port=0)


def test_serve_lists_runs_and_answers_json(served):
    root, port = served
    assert find_runs(root) == ["a"]
    status, body = get(port, "/")
    assert status == 200 and b'href="/run/a"' in body
    status, body = get(port, "/api/run/a")
    state = json.loads(body)
    assert status == 200 and state["epochs"] == 1 and 'id="curves-loss"' in state["html"]
    assert get(port, "/files/a/history.json") == (200, (root / "a" / "history.json").read_bytes())
    assert get(port, "/api/runs")[1] == b'{"runs": ["a"]}'
    assert get(port, "/nothing")[0] == 404


@pytest.mark.parametrize("path", ["/files/../secret.txt", "/files/a/../../secret.txt",
                                  "/files/%2e%2e/secret.txt", "/files/..%2fsecret.txt",
                                  "/run/../", "/api/run/..%2F..", "/files/a/link"])
def test_serve_refuses_path_traversal(served, path):
    root, port = served
    (root / "a" / "link").symlink_to(root.parent / "secret.txt")
    status, body = get(port, path)
    assert status in (403, 404) and b"top secret" not in body
    if ".." in path or "%2" in path.lower() or path.endswith("link"):
        assert status == 403


class _Pause(Callback):
    """Holds training before epoch 2 until the test lets it go."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def on_epoch_begin(self, trainer, epoch):
        if epoch == 1:
            self.go.wait(60)


def test_live_page_shows_a_new_epoch_within_2_seconds(tmp_path):
    (x, t), _ = load_mnist_sample(normalize=True, flatten=True)
    x, t = x[:500], t[:500]
    run = tmp_path / "runs" / "live"
    run.mkdir(parents=True)
    model = Sequential((784,), rng=0).add("dense", units=30).add("relu").add("dense", units=10)
    pause = _Pause()
    trainer = Trainer(model, Adam(), rng=0, callbacks=[
        Diagnostics(x, t, run, probe_size=64), JSONLogger(run / "history.json"), pause])
    training = threading.Thread(target=trainer.fit, args=(x, t),
                                kwargs={"epochs": 2, "validation": (x[:100], t[:100])})
    server = make_server(tmp_path / "runs", port=0)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    training.start()
    browser = None
    try:
        deadline = time.monotonic() + 60
        while not (run / "history.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        browser = DevTools(f"http://127.0.0.1:{server.server_address[1]}/run/live")
        status = "document.getElementById('status') && document.getElementById('status')"
        assert browser.wait_for(f"{status}.dataset.epoch === '1'", 20)
        assert browser.evaluate("document.querySelectorAll('#panels .panel').length") > 5
        pause.go.set()
        while json.loads((run / "history.json").read_text()).get("epoch") != [1, 2]:
            time.sleep(0.01)
        assert browser.wait_for(f"{status}.dataset.epoch === '2'", 2.0), \
            "the live page did not show epoch 2 within 2 s of history.json having it"
        marks = browser.evaluate("document.querySelectorAll('#curves-loss .mark').length")
        assert marks > 0
    finally:
        pause.go.set()
        training.join(60)
        if browser is not None:
            browser.close()
        server.shutdown()
        server.server_close()
    assert np.isfinite(trainer.history["loss"]).all()
