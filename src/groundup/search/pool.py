"""Worker processes on one host, and a single-threaded BLAS for each of them.

``run_pool`` hands tasks to ``workers`` processes one at a time, so the parent always knows
which task a worker holds; when a worker dies mid-task (killed, out of memory) the parent
reports that task as failed, starts a replacement and hands the task out again.
Processes are started with ``spawn`` (no fork of a threaded parent).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Iterator
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GROUNDUP_NUM_THREADS")


@contextlib.contextmanager
def blas_threads_env(threads: int = 1) -> Iterator[None]:
    """Children started inside see ``threads`` BLAS, OpenMP and groundup threads each (read
    when they load): N processes on N cores run faster without each one also spreading its
    matrix products over every core."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    try:
        for key in THREAD_VARS:
            os.environ[key] = str(threads)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _serve(fn: Callable[..., Any], shared: Any, inbox: Any, outbox: Any) -> None:
    pid = os.getpid()
    while True:
        task = inbox.get()
        if task is None:
            return
        key, payload = task
        try:
            with one_blas_thread():
                result = fn(shared, payload)
            outbox.put(("done", pid, key, result))
        except Exception as exc:  # a failed task is reported; the worker lives on
            outbox.put(("error", pid, key, f"{type(exc).__name__}: {exc}"))


def run_pool(fn: Callable[[Any, Any], Any], shared: Any, tasks: list[tuple[Any, Any]],
             workers: int, on_done: Callable[[Any, Any], None],
             on_failed: Callable[[Any, str], bool], max_restarts: int = 10) -> None:
    """Run ``fn(shared, payload)`` for every ``(key, payload)`` in ``tasks`` on ``workers``
    processes.

    ``on_done(key, value)`` is called in the parent for each result. ``on_failed(key,
    reason)`` is called when a task raised or its worker died; it returns True to hand the
    task out again. At most ``max_restarts`` dead workers are replaced.
    """
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    pending = list(reversed(tasks))
    procs: dict[int, tuple[Any, Any]] = {}  # pid -> (process, inbox)
    holding: dict[int, tuple[Any, Any]] = {}  # pid -> task

    def start() -> None:
        inbox = ctx.Queue()
        with blas_threads_env():
            proc = ctx.Process(target=_serve, args=(fn, shared, inbox, outbox), daemon=True)
            proc.start()
        procs[proc.pid] = (proc, inbox)

    def feed() -> None:
        for pid, (_, inbox) in procs.items():
            if pid not in holding and pending:
                holding[pid] = pending.pop()
                inbox.put(holding[pid])

    restarts = 0
    for _ in range(min(workers, len(tasks))):
        start()
    try:
        feed()
        while holding or pending:
            try:
                kind, pid, key, value = outbox.get(timeout=0.3)
            except queue.Empty:
                for pid, (proc, _) in list(procs.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    del procs[pid]
                    task = holding.pop(pid, None)
                    reason = f"worker process {pid} died (exit code {proc.exitcode})"
                    if task is not None and on_failed(task[0], reason):
                        pending.append(task)
                    if pending and restarts < max_restarts:
                        restarts += 1
                        start()
                if not procs and pending:
                    raise RuntimeError(f"search: every worker process died; {len(pending)} "
                                       "trials not run.") from None
                feed()
                continue
            task = holding.pop(pid)
            if kind == "done":
                on_done(key, value)
            elif on_failed(key, value):
                pending.append(task)
            feed()
    finally:
        for _, inbox in procs.values():
            inbox.put(None)
        for proc, _ in procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def one_blas_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread inside this process while trials run (through threadpoolctl when it
    is installed): the search's small matrices gain nothing from more, and parallelism
    comes from worker processes instead."""
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
