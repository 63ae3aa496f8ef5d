"""Bounded groups of greenthreads: GreenPool and GreenPile."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .greenthread import GreenThread, current_greenthread, spawn, spawn_n
from .queue import LightQueue
from .sync import Event, Semaphore

__all__ = ["GreenPool", "GreenPile", "GreenMap"]


class GreenPool:
    """At most ``size`` greenthreads at once.

    ``spawn`` waits while the pool is full -- except when called from one of the
    pool's own greenthreads, where it runs the function inline so a full pool
    can never deadlock on itself.
    """

    def __init__(self, size: int = 1000) -> None:
        if size < 0:
            raise ValueError(f"GreenPool size must be >= 0, got {size}")
        self.size = size
        self.sem = Semaphore(size)
        self.coroutines_running: set = set()
        self.no_coros_running = Event()
        self.no_coros_running.send(None)
        # One bound method for every greenthread's link, not one made per spawn.
        self._done = self._spawn_done

    def resize(self, new_size: int) -> None:
        """Change the size; shrinking lets running greenthreads finish."""
        self.sem.adjust(new_size - self.size)
        self.size = new_size

    def running(self) -> int:
        """Number of greenthreads running in the pool."""
        return len(self.coroutines_running)

    def free(self) -> int:
        """Number of greenthreads that could be spawned without waiting."""
        return self.sem.counter

    def waiting(self) -> int:
        """Number of greenthreads waiting in ``spawn`` for a free slot."""
        return self.sem.waiting()

    def _enter(self) -> bool:
        """Take a slot; False means run inline (full, and called from inside the pool)."""
        if self.sem.locked() and current_greenthread() in self.coroutines_running:
            return False
        self.sem.acquire()
        if not self.coroutines_running and self.no_coros_running.ready():
            self.no_coros_running.reset()
        return True

    def spawn(self, function: Callable, *args: Any, **kwargs: Any) -> GreenThread:
        """Run ``function`` in the pool, waiting for a free slot; returns its GreenThread."""
        if not self._enter():
            return _run_inline(function, args, kwargs)
        return self._track(spawn(function, *args, **kwargs))

    def spawn_n(self, function: Callable, *args: Any, **kwargs: Any) -> None:
        """Like ``spawn`` without a result; errors are logged."""
        if not self._enter():
            function(*args, **kwargs)
            return
        self._track(spawn_n(function, *args, **kwargs))

    def _track(self, gt: GreenThread) -> GreenThread:
        """Count ``gt`` as running in the pool until it ends (then its slot frees)."""
        self.coroutines_running.add(gt)
        gt.link(self._done)
        return gt

    def _spawn_done(self, coro: Any) -> None:
        self.sem.release()
        self.coroutines_running.discard(coro)
        if not self.coroutines_running and not self.no_coros_running.ready():
            self.no_coros_running.send(None)

    def waitall(self) -> None:
        """Wait until every greenthread in the pool has finished."""
        if current_greenthread() in self.coroutines_running:
            raise RuntimeError(
                "waitall() called from one of the pool's own greenthreads would never return"
            )
        self.no_coros_running.wait()

    def imap(self, function: Callable | None, *iterables: Iterable) -> GreenMap:
        """Like ``map``, results in order, run concurrently in the pool.

        Only up to ``size`` items are in flight or waiting to be consumed, so an
        endless input is never read ahead of the consumer.  A call that raised
        raises from ``next()``, and the iteration can go on past it.  With
        ``function=None`` the results are the argument tuples.
        """
        return GreenMap(self, function, zip(*iterables, strict=False))

    def starmap(self, function: Callable | None, iterable: Iterable) -> GreenMap:
        """Like ``itertools.starmap``, run concurrently in the pool."""
        return GreenMap(self, function, iter(iterable))


def _arguments(*args: Any) -> tuple:
    return args


class GreenMap:
    """The iterator ``GreenPool.imap`` returns: results in input order."""

    def __init__(self, pool: GreenPool, function: Callable | None, args_iter: Iterator) -> None:
        self.pool = pool
        self.function = _arguments if function is None else function
        self.args_iter = args_iter
        self.pending: deque[GreenThread] = deque()
        self.exhausted = False

    def __iter__(self) -> GreenMap:
        return self

    def __next__(self) -> Any:
        pending = self.pending
        while not self.exhausted and len(pending) < max(self.pool.size, 1):
            try:
                args = next(self.args_iter)
            except StopIteration:
                self.exhausted = True
                break
            pending.append(self.pool.spawn(self.function, *args))
        if not pending:
            raise StopIteration
        return pending.popleft().wait()

    next = __next__

    def close(self) -> None:
        """Stop: read no more input; calls already running finish, unread."""
        self.exhausted = True
        self.pending.clear()


def _run_inline(function: Callable, args: tuple, kwargs: dict) -> GreenThread:
    gt = GreenThread(function, args, kwargs)
    gt.main(function, args, kwargs)
    return gt


class GreenPile:
    """Spawn work into a pool, then iterate over the results in spawn order.

    Iteration waits for work still being spawned (a ``spawn`` waiting for a
    pool slot) and stops once every spawned call's result has been taken.
    """

    def __init__(self, size_or_pool: int | GreenPool = 1000) -> None:
        self.pool = size_or_pool if isinstance(size_or_pool, GreenPool) else GreenPool(size_or_pool)
        self.waiters: LightQueue = LightQueue()
        self.used = False
        self.counter = 0

    def spawn(self, func: Callable, *args: Any, **kw: Any) -> None:
        """Run ``func`` in the pile's pool; its result comes out in spawn order."""
        self.used = True
        self.counter += 1
        try:
            self.waiters.put(self.pool.spawn(func, *args, **kw))
        except BaseException:
            self.counter -= 1
            raise

    def __iter__(self) -> GreenPile:
        return self

    def next(self) -> Any:
        """The next result in spawn order (raises its exception if it failed)."""
        if not self.counter:
            raise StopIteration
        try:
            return self.waiters.get().wait()
        finally:
            self.counter -= 1

    __next__ = next

    def __len__(self) -> int:
        return self.counter
