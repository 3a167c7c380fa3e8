"""The one way groundup writes files: checked targets, atomic replacement, nothing left behind.

- :func:`output_dir` and :func:`output_file` check a target before any work is spent on it:
  a directory where a file should go, a file where a directory should be, or a place the
  process may not write (tested by creating and removing a probe file, since ``os.access``
  says yes to everything for root) each give one ``ValueError`` line naming the path and
  the fix.
- :func:`atomic_write` writes through a temporary file in the target's directory and
  renames it over the target once complete, so a reader sees the old file or the new one,
  never half of one. The file gets the mode a plain ``open()`` would give (0666 less the
  umask), not ``mkstemp``'s 0600.
- Temporary names carry the writer's process id (``.<name>.<pid>-<random>.tmp``);
  :func:`remove_leftovers` deletes those whose process is gone, after a kill.
- :func:`run_lock` refuses a second process in a run directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

_umask_lock = threading.Lock()
_LEFTOVER = re.compile(r"^\.(?:.+\.|checkpoint-new-|[\w.-]+-new-)(\d+)-[^/]*$")


def _umask() -> int:
    with _umask_lock:  # reading the umask means setting it; keep other threads out meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def cannot_write(owner: str, path: Path, exc: OSError) -> ValueError:
    """The one-line error for a path that cannot be written, with the fix."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError):
        fix = "give a file name, not a directory."
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        fix = "a file stands where a directory should be; choose another path."
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a directory you may write (e.g. --out runs/NAME)."
    elif exc.errno == errno.ENOSPC:
        fix = "free some disk space or write elsewhere."
    else:
        fix = "choose another path."
    return ValueError(f"{owner}: {path} must be writable; got {reason}. {fix}")


def _probe(owner: str, directory: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=f".probe.{os.getpid()}-", suffix=".tmp",
                                    dir=directory)
    except OSError as exc:
        raise cannot_write(owner, directory, exc) from exc
    os.close(fd)
    os.unlink(name)


def output_dir(owner: str, path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed and prove it writable; returns it resolved."""
    directory = Path(path).resolve()
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{owner}: {directory} must be a directory; got a file. "
                         "Choose another --out.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(owner, directory, exc) from exc
    _probe(owner, directory)
    return directory


def output_file(owner: str, path: str | os.PathLike) -> Path:
    """Check that a file can be written at ``path`` (creating its directory); returns it
    resolved."""
    target = Path(path).resolve()
    if target.is_dir():
        raise ValueError(f"{owner}: {target} must be a file name; got a directory. "
                         f"Give a file name, e.g. {target / 'predictions.csv'}.")
    output_dir(owner, target.parent)
    return target


def claim_output(owner: str, path: str | os.PathLike, outputs: tuple[str, ...],
                 overwrite: bool, resumable: bool = False) -> None:
    """Refuse an ``--out`` that already holds files, unless ``overwrite``; then remove the
    command's own earlier ``outputs`` (file or directory names) and refuse if anything else
    is there: groundup never deletes a file it did not write."""
    directory = Path(path)
    if not directory.is_dir():
        return
    entries = [e for e in directory.iterdir() if e.name != ".lock"
               and _LEFTOVER.match(e.name) is None]
    if not entries:
        return
    if not overwrite:
        names = sorted(e.name for e in entries)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        resume = "continue it with --resume, " if resumable else ""
        raise ValueError(f"{owner}: --out must be a new or empty directory; got {directory} "
                         f"holding {shown}. Choose another --out, {resume}or replace the "
                         "earlier run with --overwrite.")
    foreign = sorted(e.name for e in entries if e.name not in outputs)
    if foreign:
        raise ValueError(f"{owner}: --overwrite must find only this command's outputs in "
                         f"{directory}; got {', '.join(foreign[:4])}. Move them or choose "
                         "another --out.")
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], *,
                 binary: bool = True, owner: str = "write") -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{owner}: {target} must be a file name; got a directory.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=target.parent)
    except OSError as exc:
        raise cannot_write(owner, target, exc) from exc
    try:
        os.fchmod(fd, file_mode())
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(owner, target, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def temporary_dir(parent: Path, prefix: str, owner: str = "write") -> Path:
    """A new directory ``<parent>/.<prefix>-<pid>-<random>`` (for replacing a directory)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-{os.getpid()}-", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise cannot_write(owner, parent, exc) from exc
    return tmp


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and directories in ``directory`` (one level, and one level
    below in its subdirectories) whose writer process is gone; returns what was removed."""
    removed: list[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    places = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    for place in places:
        if not place.is_dir():  # a leftover itself, removed above
            continue
        for entry in place.iterdir():
            match = _LEFTOVER.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def run_lock(owner: str, directory: str | os.PathLike) -> Iterator[None]:
    """Hold ``<directory>/.lock`` for the block; a second process is refused in one line."""
    path = Path(directory) / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
    except OSError as exc:
        raise cannot_write(owner, path, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RuntimeError(f"{owner}: {directory} is in use by another groundup process "
                               f"(pid {holder}); wait for it to finish or stop it.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)
