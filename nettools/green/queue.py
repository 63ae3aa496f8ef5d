"""Green ``queue``: the standard queues, blocking greenthreads instead of OS threads.

``Queue``, ``LifoQueue`` and ``PriorityQueue`` subclass the standard classes and
only swap their lock and conditions for green ones, so every stdlib behaviour
carries over: ``maxsize <= 0`` is unbounded, ``Empty``/``Full`` (and 3.13's
``ShutDown``) are the standard exceptions, ``task_done``/``join``, ``shutdown``
where the running Python has it, and subclasses overriding ``_put``/``_get``.
The green locks are also safe to share with real threads.
"""

from __future__ import annotations

import queue as _queue
from collections import deque
from queue import *  # noqa: F403 - a drop-in replacement re-exports everything
from typing import Any

from . import threading as _gthreading

__patched__ = ["Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"]
__all__ = list(_queue.__all__)


class Queue(_queue.Queue):
    __doc__ = _queue.Queue.__doc__

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.mutex = _gthreading.Lock()
        self.not_empty = _gthreading.Condition(self.mutex)
        self.not_full = _gthreading.Condition(self.mutex)
        self.all_tasks_done = _gthreading.Condition(self.mutex)


class LifoQueue(Queue, _queue.LifoQueue):
    __doc__ = _queue.LifoQueue.__doc__


class PriorityQueue(Queue, _queue.PriorityQueue):
    __doc__ = _queue.PriorityQueue.__doc__


class SimpleQueue(_queue.SimpleQueue):
    """Unbounded FIFO queue without task tracking; ``get`` parks the greenthread."""

    def __init__(self) -> None:
        self._items: deque = deque()
        self._count = _gthreading.Semaphore(0)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; never waits (``block`` and ``timeout`` are accepted for Queue's API)."""
        self._items.append(item)
        self._count.release()

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item, waiting up to ``timeout``; ``Empty`` if none came."""
        if not block:
            got = self._count.acquire(False)
        elif timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        else:
            got = self._count.acquire(True, timeout)
        if not got:
            raise _queue.Empty
        return self._items.popleft()

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
