"""``groundup data list|info|download|verify`` through ``groundup.cli.main``."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import pytest

from data_helpers import FASHION_DIR, SHARED_MNIST, Route, http_server, make_tiny_set
from groundup.cli import main
from groundup.data import DATASETS


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROUNDUP_OFFLINE", "1")


@pytest.fixture
def tiny_as_mnist(monkeypatch):
    """Registers a tiny IDX set under the name ``mnist`` so the CLI can download it."""
    tiny = make_tiny_set()
    monkeypatch.setitem(DATASETS, "mnist", replace(tiny.spec, name="mnist"))
    return tiny


def test_data_list(tmp_path, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"data home: {tmp_path / 'home' / 'datasets'}" in out
    assert "mnist" in out and "0/4 files present" in out
    assert "mnist-sample" in out and "bundled (always available)" in out
    assert "fashion-mnist" in out


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "mnist-sample"])
def test_data_info(name, capsys):
    assert main(["data", "info", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}:")
    assert "licence:" in out and "sha256" in out


def test_data_info_shows_lookup_order(tmp_path, capsys):
    assert main(["data", "info", "fashion-mnist", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("lookup order:"))
    assert line.index("(data_dir)") < line.index("(cache)") < line.index("(system)")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_data_verify_shared_mnist_reports_the_missing_file(capsys):
    assert main(["data", "verify", "mnist", "--data-dir", str(SHARED_MNIST)]) == 1
    out = capsys.readouterr().out
    assert "train-images-idx3-ubyte.gz: missing" in out
    assert out.count(": ok (data_dir:") == 3
    assert "mnist: 3/4 files verified." in out and "groundup data download mnist" in out


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist is not installed")
def test_data_verify_fashion_system_dir(capsys):
    assert main(["data", "verify", "fashion-mnist"]) == 0
    assert "fashion-mnist: 4/4 files verified." in capsys.readouterr().out


def test_data_verify_sample(capsys):
    assert main(["data", "verify", "mnist-sample"]) == 0
    assert "mnist-train-sample-5k.npz: ok" in capsys.readouterr().out


def test_data_verify_reports_a_bad_file(tiny_as_mnist, tmp_path, capsys):
    folder = tiny_as_mnist.write(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(tiny_as_mnist.gz["train_labels"])
    assert main(["data", "verify", "--data-dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "t10k-labels-idx1-ubyte.gz: bad (data_dir:" in out
    assert "mnist: 3/4 files verified." in out


def test_data_download_sample_is_a_no_op(capsys):
    assert main(["data", "download", "mnist-sample"]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_data_download_from_mirror_then_already_present(tiny_as_mnist, tmp_path, capsys):
    routes = {f"/m/{e.filename}": Route(tiny_as_mnist.gz[e.role])
              for e in tiny_as_mnist.spec.files}
    with http_server(routes) as server:
        args = ["data", "download", "mnist", "--mirror", server.url("m"), "--timeout", "5",
                "--no-progress"]
        assert main(args) == 0
        first = capsys.readouterr().out
        assert main(args) == 0
        second = capsys.readouterr().out
        assert len(server.hits) == 4
    assert first.count("downloaded and verified") == 4
    assert second.count("already present") == 4
    assert "mnist: all 4 files ready." in second
    cache = tmp_path / "home" / "datasets" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        e.filename for e in tiny_as_mnist.spec.files)


def test_data_download_checksum_error_is_one_line_exit_2(tiny_as_mnist, tmp_path, capsys):
    routes = {f"/m/{e.filename}": Route(b"\x1f\x8b garbage") for e in tiny_as_mnist.spec.files}
    with http_server(routes) as server:
        code = main(["data", "download", "--data-dir", str(tmp_path / "d"), "--mirror",
                     server.url("m"), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("groundup data: error: fetch_file: train-images-idx3-ubyte.gz must match")
    assert list((tmp_path / "d").iterdir()) == []


def test_data_download_unreachable_mirror_exit_2(tiny_as_mnist, capsys):
    with http_server({}) as server:
        code = main(["data", "download", "--mirror", server.url("m"), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "must be downloadable" in err and "(HTTP 404)" in err


def test_data_download_unwritable_data_dir_exit_2(tiny_as_mnist, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["data", "download", "--data-dir", str(tmp_path / "file" / "sub"),
                 "--mirror", "http://127.0.0.1:9/"])
    assert code == 2
    assert "a file stands where a directory should be" in capsys.readouterr().err


def test_data_unknown_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "info", "cifar"])
    assert info.value.code == 2
    assert "invalid choice: 'cifar'" in capsys.readouterr().err


needs_train = pytest.mark.skipif(importlib.util.find_spec("groundup.cli.train_cmd") is None,
                                 reason="the train command is not part of this build")


@needs_train
def test_train_offline_with_empty_cache_uses_the_sample_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "20", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "bundled MNIST sample" in line]
    assert len(notes) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["data_source"]["fallback"] is True
    assert config["data_source"]["source"] == "bundled-sample"


@needs_train
def test_train_strict_offline_is_one_line_exit_2(tmp_path, capsys):
    code = main(["train", "--strict", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "train-images-idx3-ubyte.gz" in err and "groundup data download mnist" in err
