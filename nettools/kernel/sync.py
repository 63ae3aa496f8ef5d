"""Synchronisation between greenthreads: Event, Semaphore, BoundedSemaphore, Lock.

Waiters park in a deque; a release or send schedules one notifier on the hub,
which pops waiters and switches to them.  Because the pop and the switch happen
together inside the hub, a waiter that already left (timeout, kill) is never
woken by mistake.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .hub import get_hub

__all__ = ["Event", "Semaphore", "BoundedSemaphore", "CappedSemaphore", "Lock"]

_NOT_SET = object()
_TIMED_OUT = object()


class Event:
    """A value that greenthreads can wait for; ``send`` it once (or ``reset`` it).

    ``wait()`` returns the sent value, or raises the exception sent with
    ``send_exception``.
    """

    def __init__(self) -> None:
        self._result: Any = _NOT_SET
        self._exc: BaseException | None = None
        self._waiters: deque = deque()

    def ready(self) -> bool:
        """True once a value or exception has been sent."""
        return self._result is not _NOT_SET

    def has_exception(self) -> bool:
        return self._exc is not None

    def has_result(self) -> bool:
        return self._result is not _NOT_SET and self._exc is None

    def poll(self, notready: Any = None) -> Any:
        """``wait()`` without waiting: ``notready`` if nothing was sent yet."""
        if self.ready():
            return self.wait()
        return notready

    def reset(self) -> None:
        """Make the event unsent again so it can be reused."""
        if not self.ready():
            raise AssertionError("reset() called on an event that was not sent")
        self._result = _NOT_SET
        self._exc = None

    def wait(self, timeout: float | None = None) -> Any:
        """Return the sent value, waiting for it; ``None`` after ``timeout`` seconds."""
        if self._result is _NOT_SET:
            got = get_hub().park(self._waiters, timeout, _TIMED_OUT)
            if got is _TIMED_OUT:
                return None
            result, exc = got
        else:
            result, exc = self._result, self._exc
        if exc is not None:
            raise exc
        return result

    def send(self, result: Any = None, exc: BaseException | None = None) -> None:
        """Wake every waiter with ``result`` (or make them raise ``exc``)."""
        if self._result is not _NOT_SET:
            raise AssertionError("Trying to re-send() an already-triggered event.")
        if isinstance(exc, type):
            exc = exc()
        self._result = result
        self._exc = exc
        if self._waiters:
            waiters, self._waiters = self._waiters, deque()
            get_hub().run_callback(lambda: _wake_all(waiters, (result, exc)))

    def send_exception(self, *args: Any) -> None:
        """Make every waiter raise: ``send_exception(ValueError("x"))`` or ``(ValueError, "x")``."""
        if not args:
            raise TypeError("send_exception() needs an exception")
        exc = args[0]
        if isinstance(exc, type):
            exc = exc(*args[1:2])
        self.send(None, exc)

    def __repr__(self) -> str:
        state = "sent" if self.ready() else f"waiters={len(self._waiters)}"
        return f"<Event {state}>"


def _wake_all(waiters: deque, value: Any) -> None:
    while waiters:
        waiters.popleft().switch(value)


class Semaphore:
    """A counter that ``acquire`` decrements, waiting while it is zero."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"Semaphore value must be >= 0, got {value}")
        self.counter = value
        self._waiters: deque = deque()
        self._notify_scheduled = False

    def locked(self) -> bool:
        """True when ``acquire`` would wait."""
        return self.counter <= 0

    def bounded(self) -> bool:
        return False

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one unit; returns False if not ``blocking`` or ``timeout`` ran out.

        A ``timeout`` with ``blocking=False`` is a ``ValueError``, as in ``threading``.
        """
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self.counter > 0 and not self._waiters:
            self.counter -= 1
            return True
        if not blocking:
            return False
        if timeout is not None and timeout <= 0:
            return False
        return get_hub().park(self._waiters, timeout, False)

    def release(self, blocking: bool = True) -> bool:
        """Return one unit, waking a waiter if any."""
        self.adjust(1)
        return True

    def adjust(self, delta: int) -> None:
        """Add ``delta`` (may be negative) to the counter, waking waiters it lets in."""
        self.counter += delta
        if self.counter > 0 and self._waiters and not self._notify_scheduled:
            self._notify_scheduled = True
            get_hub().run_callback(self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        waiters = self._waiters
        while waiters and self.counter > 0:
            self.counter -= 1
            waiters.popleft().switch(True)

    @property
    def balance(self) -> int:
        """Units available, minus greenthreads waiting for one."""
        return self.counter - len(self._waiters)

    def waiting(self) -> int:
        """Number of greenthreads waiting in ``acquire``."""
        return len(self._waiters)

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} counter={self.counter} waiters={len(self._waiters)}>"


class BoundedSemaphore(Semaphore):
    """A Semaphore whose ``release`` beyond its initial value raises ``ValueError``."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self.original_counter = value

    def bounded(self) -> bool:
        return self.counter >= self.original_counter

    def release(self, blocking: bool = True) -> bool:
        if self.counter >= self.original_counter:
            raise ValueError("Semaphore released too many times")
        return super().release(blocking)


class CappedSemaphore:
    """A semaphore whose ``release`` waits, rather than raise, while the counter is
    at ``limit``: ``acquire`` waits at zero, ``release`` waits at the cap.

    Two plain semaphores hold it: ``lower_bound`` counts the units that may be
    acquired, ``upper_bound`` the room left under the cap.  Each side offers its
    unit to the other side before it waits for its own, so with ``limit=0`` an
    ``acquire`` and a ``release`` hand a unit straight over.
    """

    def __init__(self, count: int, limit: int) -> None:
        if count < 0:
            raise ValueError(f"CappedSemaphore count must be >= 0, got {count}")
        if limit is None or count > limit:
            raise ValueError("'count' cannot be more than 'limit'")
        self.lower_bound = Semaphore(count)
        self.upper_bound = Semaphore(limit - count)

    def locked(self) -> bool:
        """True when ``acquire`` would wait."""
        return self.lower_bound.locked()

    def bounded(self) -> bool:
        """True when ``release`` would wait."""
        return self.upper_bound.locked()

    def acquire(self, blocking: bool = True) -> bool:
        """Take one unit, waiting while there is none; False if not ``blocking``
        and there is none."""
        return _offer_then_take(self.upper_bound, self.lower_bound, blocking)

    def release(self, blocking: bool = True) -> bool:
        """Give one unit back, waiting while the counter is at its cap; False if
        not ``blocking`` and it is."""
        return _offer_then_take(self.lower_bound, self.upper_bound, blocking)

    @property
    def balance(self) -> int:
        """Acquires possible before one waits (negative: releases needed to get
        back to zero), counting the greenthreads waiting on either side."""
        return self.lower_bound.balance - self.upper_bound.balance

    def __enter__(self) -> CappedSemaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<CappedSemaphore balance={self.balance} lower={self.lower_bound} "
            f"upper={self.upper_bound}>"
        )


def _offer_then_take(give: Semaphore, take: Semaphore, blocking: bool) -> bool:
    if not blocking and take.locked():
        return False
    give.release()
    try:
        return take.acquire()
    except BaseException:
        give.adjust(-1)  # withdraw the offer (it may go below zero for a moment)
        raise


class Lock(Semaphore):
    """A mutual-exclusion lock (a semaphore of one); releasing it unlocked raises."""

    def __init__(self) -> None:
        super().__init__(1)

    def release(self, blocking: bool = True) -> bool:
        if self.counter > 0:
            raise RuntimeError("release unlocked lock")
        return super().release(blocking)

    def _at_fork_reinit(self) -> None:
        self.counter = 1
        self._waiters.clear()
        self._notify_scheduled = False
