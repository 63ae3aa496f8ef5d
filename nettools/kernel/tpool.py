"""Run blocking calls in OS threads without blocking other greenthreads.

``execute(fn, *args, **kw)`` hands the call to a pool of real threads (size from
``NETTOOLS_THREADPOOL_SIZE``, else eventlet's ``EVENTLET_THREADPOOL_SIZE``,
default 20, started lazily) and parks only the calling greenthread; the result
(or exception) comes back through the hub's thread-safe wake-up channel.  With
a size of 0 calls run inline, in the calling thread (a warning says so once).

``Proxy(obj)`` wraps an object whose methods block (a database connection, a
C library's handle): each method call, item access and iteration step runs
through ``execute``.

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

__all__ = ["execute", "setup", "killall", "set_num_threads", "Proxy"]

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


def _size_from_environment() -> int:
    for name in ("NETTOOLS_THREADPOOL_SIZE", "EVENTLET_THREADPOOL_SIZE"):
        text = os.environ.get(name, "").strip()
        if text:
            try:
                size = int(text)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, not {text!r}") from None
            if size < 0:
                raise ValueError(f"{name} must be 0 or more, not {size}")
            return size
    return _DEFAULT_SIZE


#: Threads the pool may run (``set_num_threads``); 0 runs calls inline.
_nthreads: int = _DEFAULT_SIZE
_nthreads_set = False
_warned_inline = False


def _get_pool() -> _Pool:
    global _pool
    if _pool is None:
        _pool = _Pool(_configured_size())
    return _pool


def _configured_size() -> int:
    global _nthreads
    if not _nthreads_set:
        _nthreads = _size_from_environment()
    return _nthreads


def _run_inline(fn: Callable, args: tuple, kwargs: dict) -> Any:
    global _warned_inline
    if not _warned_inline:
        _warned_inline = True
        import warnings

        warnings.warn(
            "Zero threads in tpool: every tpool.execute() call runs in the calling "
            "thread and blocks it; check NETTOOLS_THREADPOOL_SIZE or "
            "EVENTLET_THREADPOOL_SIZE",
            RuntimeWarning,
            stacklevel=3,
        )
    return fn(*args, **kwargs)


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
    pool = _get_pool()
    if pool.size == 0:
        return _run_inline(fn, args, kwargs)
    job = _Job(fn, args, kwargs, hub, cur)
    hub.ref()
    pool.submit(job)
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
    """Set the pool size (takes effect for threads started from now on; 0: run
    calls inline)."""
    global _nthreads, _nthreads_set
    if n < 0:
        raise ValueError(f"the thread pool size must be 0 or more, not {n}")
    _nthreads, _nthreads_set = n, True
    if _pool is not None:
        _pool.size = n


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


# ------------------------------------------------------------------ Proxy


class Proxy:
    """``obj`` with every method call made in the thread pool (``execute``).

    Attribute look-ups happen here; a callable attribute comes back as a
    function that runs the call in a thread.  Item access (``p[k]``,
    ``p[k] = v``), calling the proxy itself, ``with`` and each step of
    iteration go through the pool too.  Comparisons, ``hash``, ``len``,
    ``bool``, ``str`` and ``repr`` do not: they are cheap and rarely block.

    ``autowrap`` (a tuple of types): results and attributes of those types come
    back as Proxies themselves (a connection's cursors, say).
    ``autowrap_names``: the attributes, or the results of the methods, with
    those names come back as Proxies.  A method called with
    ``nonblocking=True`` runs in the calling thread, its result wrapped as usual.
    """

    __slots__ = ("_obj", "_autowrap", "_autowrap_names")

    def __init__(self, obj: Any, autowrap: tuple = (), autowrap_names: tuple = ()) -> None:
        self._obj = obj
        self._autowrap = tuple(autowrap)
        self._autowrap_names = tuple(autowrap_names)

    def _call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("nonblocking", False):
            result = fn(*args, **kwargs)
        else:
            result = execute(fn, *args, **kwargs)
        if self._autowrap and isinstance(result, self._autowrap):
            return Proxy(result, self._autowrap)
        return result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        wrap_named = name in self._autowrap_names
        if not callable(attr):
            if wrap_named or (self._autowrap and isinstance(attr, self._autowrap)):
                return Proxy(attr, self._autowrap)
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._call(attr, *args, **kwargs)
            if wrap_named and not isinstance(result, Proxy):
                return Proxy(result)
            return result

        call.__name__ = name
        return call

    # Special methods, which Python looks up on the type and never through
    # __getattr__.

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._call(self._obj, *args, **kwargs)
        if "__call__" in self._autowrap_names and not isinstance(result, Proxy):
            return Proxy(result)
        return result

    def __getitem__(self, key: Any) -> Any:
        return self._call(self._obj.__getitem__, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call(self._obj.__setitem__, key, value)

    def __delitem__(self, key: Any) -> None:
        self._call(self._obj.__delitem__, key)

    def __contains__(self, item: Any) -> bool:
        return self._call(self._obj.__contains__, item)

    def __enter__(self) -> Any:
        return self._call(self._obj.__enter__)

    def __exit__(self, *exc: Any) -> Any:
        return self._call(self._obj.__exit__, *exc)

    def __copy__(self) -> Any:
        return self._call(self._obj.__copy__)

    def __deepcopy__(self, memo: Any = None) -> Any:
        return self._call(self._obj.__deepcopy__, memo)

    def __iter__(self) -> Any:
        it = iter(self._obj)
        return self if it is self._obj else Proxy(it, self._autowrap)

    def __next__(self) -> Any:
        return self._call(next, self._obj)

    next = __next__

    def __eq__(self, other: Any) -> bool:
        return self._obj == other

    def __ne__(self, other: Any) -> bool:
        return self._obj != other

    def __hash__(self) -> int:
        return hash(self._obj)

    def __len__(self) -> int:
        return len(self._obj)

    def __bool__(self) -> bool:
        return bool(self._obj)

    def __str__(self) -> str:
        return str(self._obj)

    def __repr__(self) -> str:
        return repr(self._obj)
