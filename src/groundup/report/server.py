"""``groundup serve``: the runs under a directory, live, on 127.0.0.1 (standard library only).

Routes (every path is resolved inside the served directory; anything that would leave it
is refused with 403):

- ``/``: the runs found under the directory (those with a ``config.json`` or
  ``diagnostics.json``, up to ``DEPTH`` levels down), as links;
- ``/run/<path>``: one run's panels, refreshed by a small inline script that polls
- ``/api/run/<path>``: ``{"name", "epochs", "updated_ms", "html"}`` — the epochs recorded so
  far (``history.json``, else ``checkpoint/state.json``, else the diagnostics), the newest
  modification time of those files and the panels as HTML;
- ``/api/runs``: the run list as JSON;
- ``/files/<path>``: a file under the directory, as it is.
"""

from __future__ import annotations

import json
import mimetypes
import os
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from groundup.report import page
from groundup.report.panels import read_run, run_panels

__all__ = ["make_server", "find_runs", "run_state", "DEPTH", "POLL_MS"]

DEPTH = 3
POLL_MS = 500
WATCHED = ("history.json", "checkpoint/state.json", "diagnostics.json", "evaluation.json")

LIVE_SCRIPT = """
const api = document.body.dataset.api;
let seen = null;
async function poll() {
  try {
    const response = await fetch(api, {cache: "no-store"});
    const run = await response.json();
    if (run.epochs !== seen || run.updated_ms !== window.updatedMs) {
      document.getElementById("panels").innerHTML = run.html;
      const status = document.getElementById("status");
      status.textContent = "epoch " + run.epochs;
      status.dataset.epoch = run.epochs;
      seen = run.epochs;
      window.updatedMs = run.updated_ms;
    }
  } catch (error) {
    document.getElementById("status").dataset.error = String(error);
  }
  setTimeout(poll, POLL_MS);
}
poll();
""".replace("POLL_MS", str(POLL_MS))


def find_runs(root: Path) -> list[str]:
    """Paths (relative to ``root``, with ``/``) of the run directories under ``root``."""
    found = []
    for current, dirs, files in os.walk(root):
        rel = Path(current).relative_to(root)
        if len(rel.parts) >= DEPTH:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "checkpoint")
        if "config.json" in files or "diagnostics.json" in files:
            found.append(rel.as_posix())
    return found


def run_state(run_dir: Path) -> dict[str, Any]:
    """What ``/api/run`` answers for ``run_dir``."""
    run = read_run(run_dir)
    times = [(run_dir / name).stat().st_mtime_ns for name in WATCHED
             if (run_dir / name).is_file()]
    epochs = len(run["history"].get("loss") or [])
    return {"name": run["name"], "epochs": epochs,
            "updated_ms": max(times) // 1_000_000 if times else None,
            "html": run_panels(run)}


def inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` resolved, or None when it would lie outside ``root``."""
    parts = [p for p in rel.split("/") if p]
    if any(p in ("..", ".") or "\\" in p or "\x00" in p for p in parts):
        return None
    target = root.joinpath(*parts).resolve()
    return target if target == root or target.is_relative_to(root) else None


class Handler(BaseHTTPRequestHandler):
    root: Path = Path(".")
    server_version = "groundup"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: a live page polls twice a second."""

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _json(self, data: Any) -> None:
        self._send(200, json.dumps(data).encode("utf-8"), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        for prefix in ("/api/run/", "/run/", "/files/"):
            if path.startswith(prefix) or path == "/api/runs" or path == "/":
                break
        else:
            return self._text(404, "not found")
        rel = path.split("/", 3)[-1] if path.startswith("/api/run/") else \
            path.split("/", 2)[-1] if path.startswith(("/run/", "/files/")) else ""
        target = inside(self.root, rel)
        if target is None:
            return self._text(HTTPStatus.FORBIDDEN, "forbidden: outside the served directory")
        try:
            if path == "/":
                return self._index()
            if path == "/api/runs":
                return self._json({"runs": find_runs(self.root)})
            if path.startswith("/files/"):
                return self._file(target)
            if not target.is_dir():
                return self._text(404, f"no run {rel}")
            if path.startswith("/api/run/"):
                return self._json(run_state(target))
            return self._live(rel)
        except (OSError, ValueError) as exc:
            return self._text(500, f"error: {exc}")

    def _file(self, target: Path) -> None:
        if not target.is_file():
            return self._text(404, "not found")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), kind)

    def _index(self) -> None:
        runs = find_runs(self.root)
        items = "".join(f'<li class="mark"><a href="/run/{quote(r)}">{escape(r)}</a></li>'
                        for r in runs) or "<li>no runs yet</li>"
        body = f'<section class="panel" id="runs"><h3>runs</h3><ul>{items}</ul></section>'
        self._send(200, page(f"groundup: runs in {self.root}", body).encode("utf-8"),
                   "text/html; charset=utf-8")

    def _live(self, rel: str) -> None:
        body = (f'<p id="status" class="panel">waiting for the first epoch</p>'
                f'<div class="panels" id="panels"></div><script>{LIVE_SCRIPT}</script>')
        html = page(f"groundup run {rel} (live)", body)
        html = html.replace("<body>", f'<body data-api="/api/run/{quote(rel)}">', 1)
        self._send(200, html.encode("utf-8"), "text/html; charset=utf-8")


def make_server(root: str | os.PathLike, host: str = "127.0.0.1",
                port: int = 8000) -> ThreadingHTTPServer:
    """A server for the runs under ``root`` (``port=0``: any free port)."""
    directory = Path(root).resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"serve: no directory {directory}")
    handler = type("RunHandler", (Handler,), {"root": directory})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
