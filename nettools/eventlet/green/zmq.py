"""``eventlet.green.zmq``: nettools' green zmq, with the helpers eventlet's green zmq has.

Everything is ``nettools.green.zmq``'s (pyzmq's names, green ``Context``,
``Socket``, ``Poller``...), plus eventlet's ``LockReleaseError``,
``_QueueLock`` (a first-come first-served lock its owner may take again) and
``_BlockedThread`` (one greenthread parked until woken), which programs and
eventlet's tests import from it.  nettools' sockets need neither: they wait
on the hub as ``nettools.green.zmq.watch`` says.
"""

from __future__ import annotations

import time
from typing import Any

from greenlet import getcurrent

from ...green import zmq as _green_zmq
from ...green.zmq import *  # noqa: F403 - a drop-in module re-exports everything
from ...kernel.sync import Event, Semaphore

__all__ = [*_green_zmq.__all__, "LockReleaseError"]


def __getattr__(name: str) -> Any:
    """Anything else nettools' green zmq (and so pyzmq) offers."""
    return getattr(_green_zmq, name)


class LockReleaseError(Exception):
    """``_QueueLock.release()`` of a lock nobody holds."""


class _QueueLock:
    """A lock granted in the order greenthreads asked for it, which the
    greenthread holding it may take again (each take needs its release)."""

    def __init__(self) -> None:
        self._turns = Semaphore(1)  # first come, first served
        self._owner: Any = None
        self._count = 0

    def __bool__(self) -> bool:
        """True while held."""
        return self._count > 0

    def acquire(self) -> None:
        me = getcurrent()
        if self._owner is not me:
            self._turns.acquire()
            self._owner = me
        self._count += 1

    def release(self) -> None:
        if self._count <= 0:
            raise LockReleaseError("Cannot release unacquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._turns.release()

    def __enter__(self) -> _QueueLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class _BlockedThread:
    """At most one greenthread, parked in ``block()`` until ``wake()`` (or its
    ``deadline``, a ``time.monotonic()`` value) comes."""

    def __init__(self) -> None:
        self._wakeup: Event | None = None

    def __bool__(self) -> bool:
        """True while a greenthread is blocked here."""
        return self._wakeup is not None

    def block(self, deadline: float | None = None) -> None:
        if self._wakeup is not None:
            raise RuntimeError("Cannot block more than one thread on one BlockedThread")
        self._wakeup = wakeup = Event()
        try:
            wakeup.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        finally:
            self._wakeup = None

    def wake(self) -> bool:
        """Wake the blocked greenthread; False if none is blocked or it was woken already."""
        wakeup = self._wakeup
        if wakeup is None or wakeup.ready():
            return False
        wakeup.send(True)
        return True
