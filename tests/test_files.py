"""Every file in and out fails cleanly: checked targets, modes, leftovers, locks, bombs."""

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from groundup import _files, io
from groundup.cli import main

TINY = ["--dataset", "mnist-sample", "--model", "two-layer", "--hidden", "8", "--epochs", "1",
        "--val-fraction", "0"]


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in "\n".join(err) and "Warning" not in "\n".join(err)
    return errors[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("files") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- targets checked before any work ----------------------------------------------------

def test_predict_out_an_existing_directory_exits_2(run_dir, tmp_path, capsys):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((2, 784), dtype=np.float32))
    (tmp_path / "adir").mkdir()
    assert main(["predict", str(run_dir), str(inputs), "--out", str(tmp_path / "adir")]) == 2
    _one_error_line(capsys, "adir", "got a directory")


def test_predict_out_under_a_regular_file_exits_2(run_dir, tmp_path, capsys):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((2, 784), dtype=np.float32))
    (tmp_path / "afile").write_text("x")
    assert main(["predict", str(run_dir), str(inputs), "--out",
                 str(tmp_path / "afile" / "pred.csv")]) == 2
    _one_error_line(capsys, "afile", "must be a directory")


def test_predict_out_through_a_symlink_to_a_directory_exits_2(run_dir, tmp_path, capsys):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((2, 784), dtype=np.float32))
    (tmp_path / "real").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "real")
    assert main(["predict", str(run_dir), str(inputs), "--out", str(tmp_path / "link.csv")]) == 2
    _one_error_line(capsys, "real", "got a directory")  # the resolved path is named


def test_train_out_under_a_regular_file_exits_2_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "afile" / "run")]) == 2
    _one_error_line(capsys, "afile")


def _immutable(path):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")


def _mutable(path):
    subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.parametrize("command", ["train", "experiment", "search"])
def test_out_in_an_unwritable_directory_exits_2(tmp_path, capsys, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    _immutable(locked)
    try:
        argv = {"train": ["train", *TINY],
                "experiment": ["experiment", "run", "optimizer-paths", "--quick"],
                "search": ["search", "--trials", "1", "--epochs", "1"]}[command]
        assert main([*argv, "--out", str(locked / "run")]) == 2
        line = _one_error_line(capsys, "locked", "must be writable")
        assert "Operation not permitted" in line or "Permission denied" in line
    finally:
        _mutable(locked)
    assert list(locked.iterdir()) == []


def test_resume_of_an_unwritable_run_directory_exits_2_before_an_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = (out / "checkpoint" / "state.json").read_text()
    capsys.readouterr()
    _immutable(out)
    try:
        assert main(["train", "--resume", str(out), "--epochs", "3"]) == 2
        _one_error_line(capsys, str(out.resolve()), "must be writable")
    finally:
        _mutable(out)
    assert (out / "checkpoint" / "state.json").read_text() == before


# -- file modes ---------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask):
    out = tmp_path / "run"
    old = os.umask(umask)
    try:
        assert main(["train", *TINY, "--out", str(out)]) == 0
        probe = tmp_path / "plain"
        probe.write_text("x")  # what a plain open() gives under this umask
    finally:
        os.umask(old)
    want = stat.S_IMODE(probe.stat().st_mode)
    assert want == 0o666 & ~umask
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
    names = {p.relative_to(out).as_posix() for p in files}
    assert {"config.json", "history.json", "history.csv", "model.npz", "figures/curves.png",
            "checkpoint/state.json", "checkpoint/model.npz",
            "checkpoint/optimizer.npz"} <= names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == want, path


# -- leftovers of a killed write and two processes at once -------------------------------

def test_leftovers_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / f".model.npz.{dead}-abc.tmp").write_text("x")
    (tmp_path / f".checkpoint-new-{dead}-xyz").mkdir()
    (tmp_path / f".checkpoint-new-{dead}-xyz" / "model.npz").write_text("x")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / f".curves.png.{dead}-q.tmp").write_text("x")
    (tmp_path / f".history.json.{live}-abc.tmp").write_text("x")  # still being written
    (tmp_path / "notes.tmp").write_text("x")  # not ours
    removed = _files.remove_leftovers(tmp_path)
    assert len(removed) == 3
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == sorted([f".history.json.{live}-abc.tmp", "figures", "notes.tmp"])


_KILL_IN_CHECKPOINT = """
import os, signal, sys
from groundup import _files
from groundup.cli import main

real = _files.atomic_write
seen = []
def atomic_write(path, write, **kw):
    if ".checkpoint-new-" in str(path) and str(path).endswith("optimizer.npz"):
        seen.append(path)
    if len(seen) == 2 and seen[-1] == path:  # the second epoch's checkpoint
        def half(fh):
            write(fh)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # mid-checkpoint, before any rename
        return real(path, half, **kw)
    return real(path, write, **kw)
_files.atomic_write = atomic_write
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_mid_checkpoint_leaves_nothing_after_the_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_CHECKPOINT, "train", *TINY,
                           "--epochs", "2", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".checkpoint-new-")]
    assert leftovers, "the kill should have left the half-written checkpoint"
    assert main(["train", "--resume", str(out)]) == 0
    names = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    assert not [n for n in names if ".tmp" in n or "-new-" in n], names
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]


def test_two_processes_resuming_one_run_directory_the_second_is_refused(run_dir, capsys):
    with _files.run_lock("test", run_dir):
        assert main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 2
    _one_error_line(capsys, "in use by another groundup process", f"pid {os.getpid()}")


# -- bombs ----------------------------------------------------------------------------------

def _npz_claiming(path, shape, payload=b"\0" * 64):
    """An .npz whose one member's header claims ``shape`` but holds ``payload``."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", member)


def test_an_npz_whose_header_claims_more_than_it_holds_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.npz"
    _npz_claiming(path, (2 ** 31, 2 ** 31, 4))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"array 'x' must be as large as its header claims"):
            io.npz_headers(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * path.stat().st_size + (1 << 20)


def test_a_deflate_bomb_npz_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x=np.zeros(40 << 20, dtype=np.uint8))  # 40 MB of zeros
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"at most 200x its size once unpacked"):
        io.npz_headers(path)


@pytest.mark.parametrize("target", ["model", "predict-input", "checkpoint"])
def test_bomb_npz_files_are_refused_in_one_line_by_every_reader(run_dir, tmp_path, capsys,
                                                                 target):
    bomb = tmp_path / "bomb.npz"
    _npz_claiming(bomb, (2 ** 40,))
    if target == "model":
        code = main(["evaluate", str(run_dir), "--model-file", str(bomb)])
    elif target == "predict-input":
        code = main(["predict", str(run_dir), str(bomb)])
    else:
        copy = tmp_path / "run"
        shutil.copytree(run_dir, copy)
        shutil.copy(bomb, copy / "checkpoint" / "optimizer.npz")
        code = main(["train", "--resume", str(copy), "--epochs", "2"])
    assert code == 2
    _one_error_line(capsys, "bomb.npz" if target != "checkpoint" else "optimizer.npz")


def _png_header_only(path, width, height):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_a_pixel_bomb_image_is_refused_before_it_is_decoded(run_dir, tmp_path, capsys):
    pytest.importorskip("PIL")
    image = tmp_path / "huge.png"
    _png_header_only(image, 20000, 20000)
    assert main(["predict", str(run_dir), str(image)]) == 2
    _one_error_line(capsys, "20000 x 20000 pixels", "huge.png")


# -- one line, no warnings ------------------------------------------------------------------

def test_a_user_error_prints_no_library_warning_beside_it(tmp_path, capsys):
    path = tmp_path / "only_header.csv"
    path.write_text("label,p1,p2\n")
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, "only_header.csv")


def test_a_bomb_in_a_users_npz_data_set_is_refused_before_reading(tmp_path, capsys):
    data = tmp_path / "mine.npz"
    _npz_claiming(data, (2 ** 40,))
    assert main(["train", "--dataset", str(data), "--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, "mine.npz")
