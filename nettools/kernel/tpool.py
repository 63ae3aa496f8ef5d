"""Run blocking calls in OS threads without blocking other greenthreads.

``execute(fn, *args, **kw)`` hands the call to a pool of real threads (size from
``NETTOOLS_THREADPOOL_SIZE``, default 20, started lazily) and parks only the
calling greenthread; the result (or exception) comes back through the hub's
thread-safe wake-up channel.

The pool is built on ``_thread`` and ``_queue`` directly so that monkey-patching
``threading`` and ``queue`` can never turn its workers into greenthreads.
"""

from __future__ import annotations

import os
import sys
from _queue import SimpleQueue
from _thread import allocate_lock, start_new_thread
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from .hub import Hub, get_hub

__all__ = ["execute", "setup", "killall", "set_num_threads"]

_DEFAULT_SIZE = 20
_STOP = object()


class _Job:
    __slots__ = ("fn", "args", "kwargs", "hub", "waiter", "result", "exc")

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, hub: Hub, waiter: Any) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.hub = hub
        self.waiter = waiter  # None once the caller stopped waiting
        self.result: Any = None
        self.exc: BaseException | None = None

    def deliver(self) -> None:
        """Runs on the caller's hub when the thread is done."""
        self.hub.unref()
        w = self.waiter
        if w is not None:
            self.waiter = None
            w.switch()


class _Pool:
    #: Exceptions raised by jobs are also kept here when set to a list (debugging).
    #: A class attribute, so setting it holds for pools created later too.
    exception_log: list | None = None

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: SimpleQueue = SimpleQueue()
        self.lock = allocate_lock()
        self.threads = 0
        self.idle = 0

    def submit(self, job: _Job) -> None:
        with self.lock:
            spawn = False
            if self.idle:
                self.idle -= 1  # that idle worker will take this job
            elif self.threads < self.size:
                self.threads += 1
                spawn = True
        self.jobs.put(job)
        if spawn:
            start_new_thread(self._worker, ())

    def _worker(self) -> None:
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                with self.lock:
                    self.threads -= 1
                return
            try:
                job.result = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:
                job.exc = exc
                if self.exception_log is not None:
                    self.exception_log.append(sys.exc_info())
            job.hub.run_callback_threadsafe(job.deliver)
            job = None
            with self.lock:
                self.idle += 1

    def stop(self) -> None:
        with self.lock:
            n = self.threads
        for _ in range(n):
            self.jobs.put(_STOP)


_pool: _Pool | None = None


def _get_pool() -> _Pool:
    global _pool
    if _pool is None:
        size = int(os.environ.get("NETTOOLS_THREADPOOL_SIZE", _DEFAULT_SIZE) or _DEFAULT_SIZE)
        _pool = _Pool(max(1, size))
    return _pool


def execute(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in an OS thread; wait (green) for its result.

    Exceptions propagate to the caller.  If the calling greenthread is killed or
    times out while waiting, the thread still finishes the call; its result is
    dropped.
    """
    hub = get_hub()
    cur = getcurrent()
    if cur is hub.greenlet:
        raise RuntimeError("tpool.execute() cannot be called from inside the hub")
    job = _Job(fn, args, kwargs, hub, cur)
    hub.ref()
    _get_pool().submit(job)
    try:
        hub.switch()
    finally:
        job.waiter = None
    if job.exc is not None:
        raise job.exc
    return job.result


def setup() -> None:
    """Create the pool now rather than on first use."""
    _get_pool()


def set_num_threads(n: int) -> None:
    """Set the pool size (takes effect for threads started from now on)."""
    _get_pool().size = max(1, n)


def killall() -> None:
    """Stop the pool's threads once they finish their current jobs."""
    global _pool
    if _pool is not None:
        _pool.stop()
        _pool = None


def _reset_after_fork() -> None:
    global _pool
    _pool = None  # the child has none of the parent's threads


os.register_at_fork(after_in_child=_reset_after_fork)
