"""groundup's own worker threads, and the BLAS held to one thread while they run.

NumPy releases the GIL inside ufuncs and BLAS calls, so work split into parts runs in
parallel on Python threads. Two uses:

- Large optimizer updates are split over ``get_num_threads()`` threads.
- Inside ``own_threads()`` a compiled model with a convolution block (``groundup.fast``)
  splits its large products and element-wise passes over the same threads, each part
  calling a one-thread BLAS. This is faster for the convolution nets than letting a
  multi-threaded BLAS split each product: between products, OpenBLAS's idle threads keep
  spinning on the cores, and every NumPy pass outside the BLAS then runs on one core alone.
  Convolution blocks cut their products at fixed places, so their results do not depend on
  the thread count; large Affine products are cut once per thread, which OpenBLAS computed
  identically for every cut tried in float32, though a BLAS may round a cut product
  differently in the last bit.

Holding the BLAS to one thread needs ``threadpoolctl`` (in the ``fast``, ``search`` and
``all`` extras); without it ``own_threads()`` does nothing and the BLAS threads as usual.
The number of threads is ``set_num_threads(n)``, else ``GROUNDUP_NUM_THREADS``, else
``OMP_NUM_THREADS``, else min(cores, 4).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from groundup._checks import check_number


def _default_threads() -> int:
    text = os.environ.get("GROUNDUP_NUM_THREADS", "").strip()
    if text:
        if text.isdigit() and int(text) > 0:
            return int(text)
        warnings.warn(f"GROUNDUP_NUM_THREADS must be a positive integer, got {text!r}; "
                      "ignoring it (unset it or set e.g. GROUNDUP_NUM_THREADS=2).",
                      RuntimeWarning, stacklevel=2)
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return max(1, min(os.cpu_count() or 1, 4))


_state: dict[str, Any] = {"n": _default_threads(), "pool": None, "pid": None}
_local = threading.local()
_blas_lock = threading.Lock()
_blas: dict[str, Any] = {"libs": None, "users": 0, "saved": []}


def set_num_threads(n: int) -> None:
    """Set how many threads groundup splits large work over (1 = no extra thread)."""
    check_number("set_num_threads", "n", n, low=1, integer=True)
    _state["n"] = int(n)


def get_num_threads() -> int:
    """Threads groundup splits large work over (see the module docstring for the default)."""
    return int(_state["n"])


def pool() -> ThreadPoolExecutor:
    """The ``get_num_threads() - 1`` worker threads (the caller's thread is the last one)."""
    # A forked child inherits the pool object but not its threads: build a new one there.
    executor = _state["pool"]
    want = max(1, _state["n"] - 1)
    if executor is None or _state["pid"] != os.getpid() or executor._max_workers != want:
        executor = ThreadPoolExecutor(max_workers=want, thread_name_prefix="groundup")
        _state["pool"], _state["pid"] = executor, os.getpid()
    return executor


def run(fn: Callable[..., None], parts: Sequence[tuple]) -> None:
    """``fn(*part)`` for every part: the first on this thread, the rest on the pool."""
    futures = [pool().submit(fn, *part) for part in parts[1:]]
    try:
        if parts:
            fn(*parts[0])
    finally:
        for future in futures:
            future.result()


def bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering ``range(size)``, sizes ±1."""
    edges = [size * j // parts for j in range(parts + 1)]
    return [(edges[j], edges[j + 1]) for j in range(parts) if edges[j + 1] > edges[j]]


def splitting() -> int:
    """Threads to split model work over on this thread: 0 outside ``own_threads()``."""
    return getattr(_local, "threads", 0)


def _blas_libs() -> list[Any]:
    if _blas["libs"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas["libs"] = []
        else:
            _blas["libs"] = [lib for lib in ThreadpoolController().lib_controllers
                             if lib.user_api == "blas"]
    return _blas["libs"]


@contextlib.contextmanager
def own_threads() -> Iterator[None]:
    """Inside: the BLAS runs on one thread and models split their work over ours.

    Re-entrant; when several threads are inside at once, the BLAS thread counts are
    restored when the last one leaves. Does nothing with one thread or no threadpoolctl.
    """
    n = get_num_threads()
    if splitting() or n == 1 or not _blas_libs():
        yield
        return
    with _blas_lock:
        if _blas["users"] == 0:
            _blas["saved"] = [(lib, lib.num_threads) for lib in _blas["libs"]]
            for lib in _blas["libs"]:
                lib.set_num_threads(1)
        _blas["users"] += 1
    _local.threads = n
    try:
        yield
    finally:
        _local.threads = 0
        with _blas_lock:
            _blas["users"] -= 1
            if _blas["users"] == 0:
                for lib, count in _blas["saved"]:
                    lib.set_num_threads(count)
