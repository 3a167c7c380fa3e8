"""Shared helpers for the data tests: tiny real IDX data sets and a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from groundup.data import DatasetSpec, RemoteFile, to_idx_bytes

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_MNIST = SHARED_DATA / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

FILENAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class TinySet:
    """A four-file IDX data set small enough to build in a test."""

    spec: DatasetSpec
    gz: dict[str, bytes]
    raw: dict[str, bytes]
    arrays: dict[str, np.ndarray]

    def write(self, folder: Path, roles: tuple[str, ...] | None = None,
              compress: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for role, name in FILENAMES.items():
            if roles is not None and role not in roles:
                continue
            if compress:
                (folder / name).write_bytes(self.gz[role])
            else:
                (folder / name[:-3]).write_bytes(self.raw[role])
        return folder


def make_tiny_set(n_train: int = 30, n_test: int = 20, seed: int = 0,
                  name: str = "tiny") -> TinySet:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.permutation(np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.permutation(np.arange(n_test) % 10).astype(np.uint8),
    }
    raw = {role: to_idx_bytes(a) for role, a in arrays.items()}
    gz = {role: gzip.compress(b, mtime=0) for role, b in raw.items()}
    files = tuple(RemoteFile(role, FILENAMES[role], len(gz[role]), sha256(gz[role]),
                             sha256(raw[role])) for role in FILENAMES)
    spec = DatasetSpec(name=name, title="tiny test digits", files=files, mirrors=(),
                       n_train=n_train, n_test=n_test)
    return TinySet(spec, gz, raw, arrays)


@dataclass
class Route:
    """What the server answers for one path: ``kind`` is ``ok``, ``hang`` or ``cut``
    (announces more bytes than it sends, then closes)."""

    body: bytes = b""
    kind: str = "ok"


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    hits: list[str] = field(default_factory=list)

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix}/"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        server.hits.append(self.path)
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.kind == "hang":
            server.release.wait(10)
            return
        size = len(route.body) + (1000 if route.kind == "cut" else 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(route.body)
        if route.kind == "cut":
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


@contextmanager
def http_server(routes: dict[str, Route]) -> Iterator[Server]:
    """A threaded HTTP server on 127.0.0.1 (random free port) answering ``routes``
    (paths like ``/a/t10k-labels-idx1-ubyte.gz``), 404 for anything else."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes = routes
    httpd.hits = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        server = Server(f"http://{host}:{port}", routes)
        server.hits = httpd.hits
        yield server
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
