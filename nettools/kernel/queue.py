"""Queues between greenthreads: Queue, LightQueue, PriorityQueue, LifoQueue.

As in eventlet, ``maxsize=None`` (or negative) means unbounded and
``maxsize=0`` makes a *channel*: ``put`` waits until a ``get`` takes the item.
``Empty`` and ``Full`` are the standard library's ``queue.Empty``/``queue.Full``.

Blocked getters and putters park in deques.  One notifier per queue runs on the
hub and hands items over: it pops a waiter and switches to it in one step, so a
getter that timed out can never swallow an item.
"""

from __future__ import annotations

import heapq
from collections import deque
from queue import Empty, Full
from typing import Any

from greenlet import getcurrent

from .hub import get_hub
from .sync import Event

__all__ = ["Queue", "LightQueue", "PriorityQueue", "LifoQueue", "Empty", "Full"]

_TIMED_OUT = object()
#: What a non-blocking waiter is woken with when nothing can be handed to it.
_REFUSED = object()


class _Putter:
    """A greenthread blocked in ``put``, holding the item it wants to add."""

    __slots__ = ("item", "greenlet", "block")

    def __init__(self, item: Any, g: Any, block: bool = True) -> None:
        self.item = item
        self.greenlet = g
        self.block = block

    def switch(self, value: Any = None) -> Any:
        return self.greenlet.switch(value)


class _NowaitGetter:
    """A greenthread in ``get(block=False)`` waiting one hub turn for a putter
    that is already waiting (a channel's item comes only by handover)."""

    __slots__ = ("greenlet",)
    block = False

    def __init__(self, g: Any) -> None:
        self.greenlet = g

    def switch(self, value: Any = None) -> Any:
        return self.greenlet.switch(value)


class LightQueue:
    """A FIFO queue without ``task_done``/``join`` (slightly cheaper than ``Queue``)."""

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = None if maxsize is None or maxsize < 0 else maxsize
        self.getters: deque = deque()
        self.putters: deque = deque()
        self._notify_scheduled = False
        self._nowait_parked = 0  # non-blocking waiters parked for one handover
        self._init(self.maxsize)

    # Storage hooks, overridden by PriorityQueue and LifoQueue.
    def _init(self, maxsize: int | None) -> None:
        self.queue: Any = deque()

    def _get(self) -> Any:
        return self.queue.popleft()

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def qsize(self) -> int:
        """Number of items queued."""
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)

    def empty(self) -> bool:
        return not self.queue

    def full(self) -> bool:
        """True if ``put`` would wait (always true for a channel)."""
        return self.maxsize is not None and len(self.queue) >= self.maxsize

    def getting(self) -> int:
        """Number of greenthreads waiting in ``get``."""
        return len(self.getters)

    def putting(self) -> int:
        """Number of greenthreads waiting in ``put``."""
        return len(self.putters)

    def resize(self, size: int | None) -> None:
        """Change ``maxsize``; waiting putters proceed if room appeared."""
        self.maxsize = None if size is None or size < 0 else size
        if self.putters:
            self._schedule_notify()

    def _room(self) -> bool:
        m = self.maxsize
        return m is None or len(self.queue) < m  # a channel (0) stores nothing

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``, waiting while the queue is full; ``Full`` after ``timeout``.

        On a channel (``maxsize=0``) ``put`` waits until a ``get`` has taken the
        item; a non-blocking one succeeds only if a getter is waiting already.
        """
        if not self.putters and self._room():
            self._put(item)
            if self.getters:
                self._schedule_notify()
            self._put_bookkeeping()
            return
        nowait = not block or (timeout is not None and timeout <= 0)
        hub = get_hub()
        cur = getcurrent()
        if cur is hub.greenlet:
            # A hub callback cannot wait: hand the item to a waiting getter now.
            if self.getters and not self.putters:
                self._put_bookkeeping()
                self.getters.popleft().switch(item)
                return
            raise Full
        if nowait and not self.getters:
            raise Full
        if self.getters:
            self._schedule_notify()
        token = _Putter(item, cur, not nowait)
        self._nowait_parked += nowait
        try:
            got = hub.park(self.putters, None if nowait else timeout, _TIMED_OUT, token)
        finally:
            self._nowait_parked -= nowait
        if got is _TIMED_OUT or got is _REFUSED:
            raise Full
        # The notifier stored (or handed over) our item before waking us.

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item, waiting for one; ``Empty`` after ``timeout``."""
        nowait = not block or (timeout is not None and timeout <= 0)
        if self.queue and (nowait or not self.getters):
            item = self._get()
            if self.putters:
                self._schedule_notify()
            return item
        hub = get_hub()
        cur = getcurrent()
        if nowait:
            if not self.putters:
                raise Empty
            if cur is hub.greenlet:
                # A hub callback cannot wait: take a waiting putter's item now.
                p = self.putters.popleft()
                self._put_bookkeeping()
                p.switch()
                return p.item
            # A putter waits: the handover takes one hub turn.
            self._schedule_notify()
            self._nowait_parked += 1
            try:
                item = hub.park(self.getters, None, _TIMED_OUT, _NowaitGetter(cur))
            finally:
                self._nowait_parked -= 1
            if item is _REFUSED:
                raise Empty
            return item
        if self.putters:
            self._schedule_notify()
        item = hub.park(self.getters, timeout, _TIMED_OUT)
        if item is _TIMED_OUT:
            raise Empty
        return item

    def get_nowait(self) -> Any:
        return self.get(False)

    def _schedule_notify(self) -> None:
        if not self._notify_scheduled:
            self._notify_scheduled = True
            get_hub().run_callback(self._notify)

    def _notify(self) -> None:
        """Runs on the hub: hand queued items to getters, putters' items to
        getters (the getter runs first, then the putter), and let putters in
        while there is room.  Non-blocking waiters left unserved are refused."""
        self._notify_scheduled = False
        getters = self.getters
        putters = self.putters
        while True:
            if getters and self.queue:
                getters.popleft().switch(self._get())
            elif getters and putters:
                p = putters.popleft()
                self._put_bookkeeping()
                getters.popleft().switch(p.item)
                p.switch()
            elif putters and self._room():
                p = putters.popleft()
                self._put(p.item)
                self._put_bookkeeping()
                p.switch()
            else:
                break
        if self._nowait_parked:
            _refuse_nonblocking(putters)
            _refuse_nonblocking(getters)

    def _put_bookkeeping(self) -> None:
        pass

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} maxsize={self.maxsize} qsize={len(self.queue)} "
            f"getting={len(self.getters)} putting={len(self.putters)}>"
        )


def _refuse_nonblocking(waiters: deque) -> None:
    for w in [w for w in waiters if not getattr(w, "block", True)]:
        waiters.remove(w)
        w.switch(_REFUSED)


class Queue(LightQueue):
    """A FIFO queue with ``task_done``/``join``, like the standard library's."""

    def __init__(self, maxsize: int | None = None) -> None:
        super().__init__(maxsize)
        self.unfinished_tasks = 0
        # What joiners wait on, made by the first join() that has to wait: a
        # queue nobody joins (a writer's outbox) costs no event per item.
        self._all_done: Event | None = None

    def _put_bookkeeping(self) -> None:
        self.unfinished_tasks += 1

    def task_done(self) -> None:
        """Mark one item taken by ``get`` as processed (for ``join``)."""
        if self.unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self.unfinished_tasks -= 1
        if self.unfinished_tasks == 0 and self._all_done is not None:
            all_done, self._all_done = self._all_done, None
            all_done.send(True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put has been marked done; False on timeout."""
        if self.unfinished_tasks > 0:
            if self._all_done is None:
                self._all_done = Event()
            return bool(self._all_done.wait(timeout)) or self.unfinished_tasks == 0
        return True


class PriorityQueue(Queue):
    """Lowest item first (items usually ``(priority, data)`` tuples)."""

    def _init(self, maxsize: int | None) -> None:
        self.queue = []

    def _put(self, item: Any, heappush: Any = heapq.heappush) -> None:
        heappush(self.queue, item)

    def _get(self, heappop: Any = heapq.heappop) -> Any:
        return heappop(self.queue)


class LifoQueue(Queue):
    """Last in, first out."""

    def _init(self, maxsize: int | None) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.pop()
