"""Optuna storages for the search: in memory, a journal file for processes on one host, or
a database URL (PostgreSQL) with heartbeats for many hosts; and the one-line error when
Optuna is not installed."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from groundup._checks import message, value_error
from groundup.search.space import OWNER


def import_optuna() -> Any:
    """The optuna module, or a one-line error naming the extra to install."""
    try:
        import optuna
    except ModuleNotFoundError as exc:
        raise RuntimeError(message(OWNER, "--engine", "random unless Optuna is installed",
                                   "optuna", "pip install 'groundup[search]'")) from exc
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna marks heartbeat, journal and QMC features experimental; they are used on
    purpose here, so their notices are not shown (tests run with warnings as errors)."""
    with warnings.catch_warnings():
        optuna = import_optuna()
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def mask_password(url: str) -> str:
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, _, host = tail.rpartition("@")
        user, colon, _ = creds.partition(":")
        return f"{head}://{user}{':***' if colon else ''}@{host}"
    return url


def is_url(storage: str | None) -> bool:
    return storage is not None and "://" in storage


def make_storage(storage: str | None, *, workers: int = 1, heartbeat_interval: int = 60,
                 grace_period: int = 120) -> Any:
    """An Optuna storage from a journal file path or a database URL (see module doc)."""
    optuna = import_optuna()
    if storage is None:
        if workers > 1:
            raise value_error(OWNER, "storage", "a journal file path or database URL with "
                              "workers > 1", None)
        return optuna.storages.InMemoryStorage()
    if not is_url(storage):
        path = Path(storage)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise value_error(OWNER, "--storage", "a file path in a directory that can be "
                              "created", storage, "a file stands where a parent directory "
                              "should be.") from exc
        with quiet_optuna():
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            # The lock is held for one append; a worker killed while holding it would
            # stall the others for Optuna's default 30 s before the lock counts as stale.
            lock = JournalFileOpenLock(str(path), grace_period=5)
            backend = JournalFileBackend(str(path), lock_obj=lock)
            return optuna.storages.JournalStorage(backend)
    scheme = storage.split("://", 1)[0].lower()
    if scheme.startswith("sqlite") and workers > 1:
        raise value_error(OWNER, "--storage", "a journal file or postgresql:// URL for "
                          "parallel workers (SQLite is not safe for them)", storage)
    url = storage
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if scheme in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + storage.split("://", 1)[1]
    if scheme.startswith("postgres"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    with quiet_optuna():
        # Optuna 4.9 renamed the retry callback and its argument; accept both spellings.
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
            callback = {"heartbeat_stale_trial_callback":
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
        else:
            callback = {"failed_trial_callback":
                        optuna.storages.RetryFailedTrialCallback(max_retry=3)}
        for attempt in range(4):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, **callback)
            except Exception as exc:  # any driver error means the database cannot be used
                # machines starting together race to create Optuna's tables: try again
                if type(exc).__name__ in ("IntegrityError", "ProgrammingError") and \
                        attempt < 3:
                    time.sleep(0.5 + attempt)
                    continue
                reason = " ".join(str(exc).split())[:200]
                shown = mask_password(storage)
                raise value_error(OWNER, "--storage", "a reachable database URL", shown,
                                  f"({type(exc).__name__}: {reason})") from exc
    return None


def close_storage(storage: Any) -> None:
    """Close a database storage's connections (a journal or in-memory one has none)."""
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", None)
    if engine is not None:
        engine.dispose()
