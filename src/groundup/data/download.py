"""Where data sets live on disk, and downloading them safely.

The per-user data home is ``$GROUNDUP_HOME/datasets`` when ``GROUNDUP_HOME`` is set,
otherwise ``<platform cache dir>/datasets`` (``platformdirs.user_cache_dir("groundup")``
when platformdirs is installed, else ``$XDG_CACHE_HOME/groundup`` or
``~/.cache/groundup``). Each data set has its own sub-directory.

A download streams into ``<file>.part`` while hashing; only when its size and SHA-256 match
the registry is it renamed to its final name, so an interrupted or corrupt download never
looks like a good file. Mirrors are tried in order; the error names the file, every URL
tried and what went wrong with each.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from groundup import __version__
from groundup._checks import check_number, value_error
from groundup.data.registry import DatasetSpec, RemoteFile

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 16

ProgressCallback = Callable[[int, int], None]


class DownloadError(RuntimeError):
    """No mirror delivered a file: every URL tried failed (HTTP error, timeout, no network)."""


class ChecksumError(ValueError):
    """A file's size or SHA-256 differs from the registry."""


class _Truncated(Exception):
    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def data_home() -> Path:
    """The per-user directory holding one sub-directory per data set (not created)."""
    home = os.environ.get("GROUNDUP_HOME")
    if home:
        return Path(home).expanduser() / "datasets"
    try:
        import platformdirs
    except ImportError:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        return base / "groundup" / "datasets"
    return Path(platformdirs.user_cache_dir("groundup")) / "datasets"


def dataset_cache_dir(name: str) -> Path:
    """``data_home() / name``."""
    return data_home() / name


def offline() -> bool:
    """True when ``$GROUNDUP_OFFLINE`` is set to a non-empty value other than ``0``."""
    return os.environ.get("GROUNDUP_OFFLINE", "") not in ("", "0")


def ensure_dir(path: Path, owner: str = "download") -> Path:
    """Create ``path`` (and parents) or explain in one line why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise value_error(owner, "the data directory", "a directory that can be created",
                          str(path), "a file stands where a directory should be; set "
                          "$GROUNDUP_HOME or pass --data-dir DIR.") from exc
    except PermissionError as exc:
        raise value_error(owner, "the data directory", "writable", str(path),
                          "set $GROUNDUP_HOME or pass --data-dir DIR.") from exc
    if not path.is_dir():
        raise value_error(owner, "the data directory", "a directory", str(path),
                          "set $GROUNDUP_HOME or pass --data-dir DIR.")
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _auto_progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def _make_progress(progress: bool | ProgressCallback | None, name: str, total: int):
    """A (update(n_done), close()) pair for the requested progress display."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    show = _auto_progress() if progress is None else bool(progress)
    if not show:
        return (lambda done: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:
        def close() -> None:
            print(f"downloaded {name} ({total:,} bytes)", file=sys.stderr)
        return (lambda done: None), close
    bar = tqdm(total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr,
               leave=False)

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    return f"{type(reason).__name__}: {reason}"


def _stream(url: str, part: Path, entry: RemoteFile, timeout: float,
            progress: bool | ProgressCallback | None) -> tuple[int, str]:
    """Stream ``url`` into ``part``; returns (bytes written, sha256 hex). Stops reading once
    more than the expected size has arrived."""
    request = urllib.request.Request(url, headers={"User-Agent": f"groundup/{__version__}"})
    digest = hashlib.sha256()
    done = 0
    update, close = _make_progress(progress, entry.filename, entry.size)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                open(part, "wb") as out:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as exc:
                    raise _Truncated(done + len(exc.partial)) from exc
                if not chunk:
                    break
                done += len(chunk)
                if done > entry.size:
                    break
                digest.update(chunk)
                out.write(chunk)
                update(done)
            announced = response.headers.get("Content-Length")
            if done <= entry.size and announced is not None and announced.isdigit() \
                    and done < int(announced):
                raise _Truncated(done)
    finally:
        close()
    return done, digest.hexdigest()


def fetch_file(entry: RemoteFile, dest_dir: str | os.PathLike, mirrors: Sequence[str], *,
               timeout: float = DEFAULT_TIMEOUT,
               progress: bool | ProgressCallback | None = None) -> Path:
    """Download one file into ``dest_dir``, trying ``mirrors`` in order.

    The bytes go to ``<filename>.part``; after the size and the SHA-256 of the ``.gz`` match
    ``entry`` the file is renamed to ``entry.filename``. A mirror that fails (HTTP error,
    timeout, wrong bytes) leaves nothing behind and the next one is tried.

    Args:
        entry: the file and its expected size and checksum.
        dest_dir: created if needed.
        mirrors: base URLs; the file's URL is ``base.rstrip("/") + "/" + entry.filename``.
        timeout: seconds to wait on connecting and on each read.
        progress: a tqdm bar (True), nothing (False), automatic (None: a bar when stderr is
            a terminal and ``$CI`` is unset), or a callable ``f(bytes_done, total)``.

    Returns:
        The path of the verified file.

    Raises:
        ChecksumError: no mirror succeeded and at least one delivered wrong bytes (the
            message names the file, each URL and the expected/actual size and SHA-256).
        DownloadError: no mirror could deliver the file at all.
        ValueError: ``dest_dir`` cannot be created.
    """
    check_number("fetch_file", "timeout", timeout, low=0.0, low_open=True)
    dest = ensure_dir(Path(dest_dir), "fetch_file")
    final = dest / entry.filename
    part = dest / (entry.filename + ".part")
    tried: list[str] = []
    corrupt = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + entry.filename
        try:
            size, digest = _stream(url, part, entry, timeout, progress)
        except _Truncated as exc:
            part.unlink(missing_ok=True)
            corrupt = True
            tried.append(f"{url} (truncated: the connection closed after {exc.done} bytes; "
                         f"expected {entry.size} bytes)")
            continue
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()
            part.unlink(missing_ok=True)
            tried.append(f"{url} ({_describe(exc, timeout)})")
            continue
        if size != entry.size or digest != entry.sha256:
            part.unlink(missing_ok=True)
            corrupt = True
            got = f"{size} bytes" if size <= entry.size else f"more than {entry.size} bytes"
            tried.append(f"{url} (got {got}, sha256 {digest[:12]}…; expected {entry.size} bytes, "
                         f"sha256 {entry.sha256[:12]}…)")
            continue
        os.replace(part, final)
        return final
    urls = "; ".join(tried) if tried else "no mirrors given"
    fix = (f"Copy {entry.filename} into {dest} by hand, or pass --data-dir DIR holding it, "
           "then run `groundup data verify`.")
    if corrupt:
        raise ChecksumError(
            f"fetch_file: {entry.filename} must match its published size and SHA-256; got "
            f"wrong bytes from the mirrors (tried {urls}). Nothing was kept. {fix}")
    raise DownloadError(
        f"fetch_file: {entry.filename} must be downloadable from a mirror; got "
        f"tried={urls}. {fix}")


def download_dataset(spec: DatasetSpec, dest_dir: str | os.PathLike | None = None, *,
                     mirrors: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                     progress: bool | ProgressCallback | None = None,
                     roles: Sequence[str] | None = None) -> dict[str, Path]:
    """Download the files of ``spec`` that ``dest_dir`` does not already hold verified.

    Args:
        spec: the data set (``registry.get_spec("mnist")`` or a custom ``DatasetSpec``).
        dest_dir: default ``dataset_cache_dir(spec.name)``.
        mirrors: default ``spec.mirrors``.
        timeout, progress: as for ``fetch_file``.
        roles: which files (default all four).

    Returns:
        ``{role: path}`` for every requested file.
    """
    dest = Path(dest_dir) if dest_dir is not None else dataset_cache_dir(spec.name)
    mirrors = spec.mirrors if mirrors is None else tuple(mirrors)
    out: dict[str, Path] = {}
    for entry in spec.files:
        if roles is not None and entry.role not in roles:
            continue
        final = dest / entry.filename
        if final.is_file() and final.stat().st_size == entry.size \
                and file_sha256(final) == entry.sha256:
            out[entry.role] = final
            continue
        out[entry.role] = fetch_file(entry, dest, mirrors, timeout=timeout, progress=progress)
    return out
