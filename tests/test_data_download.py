"""Downloads against a real HTTP server on 127.0.0.1: mirrors, checksums, .part files,
timeouts, progress, and the cache that results."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data_helpers import SHARED_MNIST, Route, http_server, make_tiny_set
from groundup.data import (
    ChecksumError,
    DownloadError,
    RemoteFile,
    data_home,
    download_dataset,
    fetch_file,
    get_spec,
    load_idx_dataset,
    load_idx_file,
    load_mnist,
)

LABELS = "t10k-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDUP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GROUNDUP_OFFLINE", raising=False)
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def tiny():
    return make_tiny_set()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_file_success_with_progress_callback(tiny, tmp_path):
    entry = tiny.spec.file("test_images")
    calls = []
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["test_images"])}) as server:
        path = fetch_file(entry, tmp_path / "dl", [server.url("a")], timeout=5,
                          progress=lambda done, total: calls.append((done, total)))
    assert path.read_bytes() == tiny.gz["test_images"]
    assert _files(tmp_path / "dl") == [entry.filename]
    assert calls and calls[-1] == (entry.size, entry.size)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_fetch_file_progress_bar_on_stderr(tiny, tmp_path, capsys):
    entry = tiny.spec.file("train_images")
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["train_images"])}) as server:
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5, progress=True)
    assert entry.filename in capsys.readouterr().err


def test_fetch_file_quiet_when_not_a_terminal(tiny, tmp_path, capsys):
    entry = tiny.spec.file("train_images")
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["train_images"])}) as server:
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5)
    assert capsys.readouterr().err == ""


def test_fetch_file_first_mirror_404_then_second(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    with http_server({f"/good/{entry.filename}": Route(tiny.gz["test_labels"])}) as server:
        path = fetch_file(entry, tmp_path, [server.url("gone"), server.url("good")], timeout=5)
        assert server.hits == [f"/gone/{entry.filename}", f"/good/{entry.filename}"]
    assert path.read_bytes() == tiny.gz["test_labels"]


def test_fetch_file_all_mirrors_fail_names_every_url(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    with http_server({}) as server, pytest.raises(DownloadError) as info:
        fetch_file(entry, tmp_path, [server.url("m1"), server.url("m2")], timeout=5)
    text = str(info.value)
    assert f"fetch_file: {entry.filename} must be downloadable" in text
    assert f"{server.url('m1')}{entry.filename} (HTTP 404)" in text
    assert f"{server.url('m2')}{entry.filename} (HTTP 404)" in text
    assert _files(tmp_path) == []


def test_fetch_file_corrupted_bytes_checksum_error_leaves_nothing(tiny, tmp_path):
    entry = tiny.spec.file("test_images")
    body = bytearray(tiny.gz["test_images"])
    body[100] ^= 0xFF  # same size, different content
    with http_server({f"/a/{entry.filename}": Route(bytes(body))}) as server, \
            pytest.raises(ChecksumError, match=rf"{entry.filename} must match its published size "
                                               r"and SHA-256.*Nothing was kept"):
        fetch_file(entry, tmp_path / "cache", [server.url("a")], timeout=5)
    assert _files(tmp_path / "cache") == []


def test_fetch_file_truncated_body_checksum_error_leaves_nothing(tiny, tmp_path):
    entry = tiny.spec.file("test_images")
    short = tiny.gz["test_images"][:-50]
    with http_server({f"/a/{entry.filename}": Route(short)}) as server, \
            pytest.raises(ChecksumError, match=rf"{entry.filename}.*got {len(short)} bytes"):
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5)
    assert _files(tmp_path) == []


def test_fetch_file_connection_cut_mid_file_checksum_error(tiny, tmp_path):
    entry = tiny.spec.file("test_images")
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["test_images"][:300], "cut")}) \
            as server, pytest.raises(ChecksumError, match=r"truncated: the connection closed"):
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5)
    assert _files(tmp_path) == []


def test_fetch_file_oversized_body_is_rejected(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["test_labels"] + b"x" * 5000)}) \
            as server, pytest.raises(ChecksumError, match=r"more than \d+ bytes"):
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5)
    assert _files(tmp_path) == []


def test_fetch_file_corrupt_first_mirror_good_second(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    routes = {f"/bad/{entry.filename}": Route(b"\x1f\x8b" + b"0" * 10),
              f"/good/{entry.filename}": Route(tiny.gz["test_labels"])}
    with http_server(routes) as server:
        path = fetch_file(entry, tmp_path, [server.url("bad"), server.url("good")], timeout=5)
    assert path.read_bytes() == tiny.gz["test_labels"]


def test_fetch_file_hanging_server_times_out(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    with http_server({f"/a/{entry.filename}": Route(kind="hang")}) as server, \
            pytest.raises(DownloadError, match=r"timed out after 0\.3 s"):
        fetch_file(entry, tmp_path, [server.url("a")], timeout=0.3)
    assert _files(tmp_path) == []


def test_fetch_file_overwrites_stale_part_file(tiny, tmp_path):
    entry = tiny.spec.file("test_labels")
    (tmp_path / (entry.filename + ".part")).write_bytes(b"left over from a crash")
    with http_server({f"/a/{entry.filename}": Route(tiny.gz["test_labels"])}) as server:
        fetch_file(entry, tmp_path, [server.url("a")], timeout=5)
    assert _files(tmp_path) == [entry.filename]


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_fetch_file_rejects_bad_timeout(tiny, tmp_path, timeout):
    with pytest.raises(ValueError, match=r"fetch_file: timeout must be in \(0, inf\]"):
        fetch_file(tiny.spec.file("test_labels"), tmp_path, [], timeout=timeout)


def test_fetch_file_no_mirrors(tiny, tmp_path):
    with pytest.raises(DownloadError, match=r"no mirrors given"):
        fetch_file(tiny.spec.file("test_labels"), tmp_path, [])


def test_fetch_file_unwritable_destination_explains(tiny, tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    with pytest.raises(ValueError, match=r"fetch_file: the data directory must be a directory "
                                         r"that can be created.*a file stands where"):
        fetch_file(tiny.spec.file("test_labels"), tmp_path / "blocker" / "cache", ["http://x/"])


def test_download_dataset_into_cache_then_load_offline(tiny, monkeypatch):
    routes = {f"/m/{e.filename}": Route(tiny.gz[e.role]) for e in tiny.spec.files}
    with http_server(routes) as server:
        spec = replace(tiny.spec, mirrors=(server.url("m"),))
        paths = download_dataset(spec, timeout=5)
        again = download_dataset(spec, timeout=5)
        assert len(server.hits) == 4  # the second call found verified files
    assert paths == again
    assert all(p.parent == data_home() / "tiny" for p in paths.values())
    monkeypatch.setenv("GROUNDUP_OFFLINE", "1")
    (x_train, t_train), (x_test, t_test) = loaded = load_idx_dataset(spec, normalize=False)
    assert loaded.info.source == "local"
    np.testing.assert_array_equal(x_train, tiny.arrays["train_images"].reshape(30, 784))
    np.testing.assert_array_equal(t_test, tiny.arrays["test_labels"])


def test_loader_downloads_missing_files_only(tiny, tmp_path):
    tiny.write(tmp_path / "mine", roles=("train_images", "train_labels"))
    routes = {f"/m/{e.filename}": Route(tiny.gz[e.role]) for e in tiny.spec.files}
    with http_server(routes) as server:
        loaded = load_idx_dataset(tiny.spec, data_dir=tmp_path / "mine",
                                  mirrors=[server.url("m")], timeout=5, progress=False)
        assert sorted(server.hits) == ["/m/t10k-images-idx3-ubyte.gz",
                                       "/m/t10k-labels-idx1-ubyte.gz"]
    assert loaded.info.source == "download"
    assert len(_files(tmp_path / "mine")) == 4  # downloads go to the explicit data_dir


def test_load_mnist_falls_back_when_mirrors_fail(capsys):
    with http_server({}) as server:
        loaded = load_mnist(mirrors=[server.url("a"), server.url("b")], timeout=5)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "download failed; using the bundled MNIST sample" in err
    assert loaded.info.fallback and loaded.info.source == "bundled-sample"
    assert "train-images-idx3-ubyte.gz (HTTP 404)" in loaded.info.reason
    assert _files(data_home() / "mnist") == []


def test_load_mnist_strict_names_files_urls_and_fix():
    with http_server({}) as server, pytest.raises(FileNotFoundError) as info:
        load_mnist(mirrors=[server.url("a")], timeout=5, strict=True)
    text = str(info.value)
    for piece in ("load_mnist:", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                  f"{server.url('a')}train-images-idx3-ubyte.gz (HTTP 404)", "--data-dir",
                  "groundup data download mnist"):
        assert piece in text


def test_load_mnist_unwritable_cache_falls_back_or_explains(tmp_path, monkeypatch, capsys):
    (tmp_path / "notadir").write_text("x")
    monkeypatch.setenv("GROUNDUP_HOME", str(tmp_path / "notadir" / "home"))
    with http_server({}) as server:
        loaded = load_mnist(mirrors=[server.url("a")], timeout=5)
        assert loaded.info.fallback and "a file stands where" in loaded.info.reason
        assert "bundled MNIST sample" in capsys.readouterr().err
        with pytest.raises(FileNotFoundError, match=r"a file stands where a directory should be"):
            load_mnist(mirrors=[server.url("a")], timeout=5, strict=True)
        assert server.hits == []


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_real_mnist_files_served_and_downloaded(tmp_path):
    mnist = get_spec("mnist")
    roles = ("test_images", "test_labels")
    entries = []
    routes = {}
    for role in roles:
        official = mnist.file(role)
        body = (SHARED_MNIST / official.filename).read_bytes()
        # these copies were recompressed: register their own .gz digest, the official raw one
        entries.append(RemoteFile(role, official.filename, len(body),
                                  hashlib.sha256(body).hexdigest(), official.raw_sha256))
        routes[f"/mnist/{official.filename}"] = Route(body)
    spec = replace(mnist, name="mnist-real", files=(*entries, *(mnist.file(r) for r in
                                                                ("train_images", "train_labels"))))
    with http_server(routes) as server:
        images = load_idx_file(spec, "test_images", download=True, mirrors=[server.url("mnist")],
                               timeout=5)
        labels = load_idx_file(spec, "test_labels", download=True, mirrors=[server.url("mnist")],
                               timeout=5)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_recompressed_copy_fails_the_official_download_checksum(tmp_path):
    entry = get_spec("mnist").file("test_labels")
    body = (SHARED_MNIST / entry.filename).read_bytes()
    with http_server({f"/m/{entry.filename}": Route(body)}) as server, \
            pytest.raises(ChecksumError, match=rf"{entry.filename} must match"):
        fetch_file(entry, tmp_path, [server.url("m")], timeout=5)
    assert _files(tmp_path) == []
