"""Green ``threading.Condition`` and ``Event``: waiters park as greenthreads, not on locks.

The standard Condition parks every waiter on a fresh lock of its own, acquired
twice, and wakes it by releasing that lock; the standard Event takes its
Condition's lock around every ``set``, ``clear`` and ``wait``.  On green locks
that is a lock object, hand-overs through the hub and their bookkeeping per
wait.  These classes keep the standard ones' interface and semantics (they
subclass them, so ``isinstance`` and ``wait_for`` carry over; Condition takes
any lock the caller gives) but a waiter is a small record -- its greenlet, hub
and OS thread -- that ``notify``/``set`` schedules straight into the waiter's
hub.  ``Semaphore``, ``Barrier``, ``Queue`` and ``Thread.start``, built on
them, get faster too.

They stay safe with real OS threads (``tpool`` workers, threads started before
patching): a waiter in another thread is woken through that thread's hub
(``run_callback_threadsafe``), and a waiter is claimed exactly once -- by a
waker, by its timeout or by its own exit -- with an atomic ``list.pop``, so a
wake-up can never reach a wait that already ended.  Once a primitive has been
used from two OS threads, its waits tell their hub that a wake-up may come from
outside (so the hub does not call such a wait a deadlock).
"""

from __future__ import annotations

import threading as _real_threading
from _thread import get_ident as _real_get_ident
from collections import deque
from typing import Any

from greenlet import getcurrent

from ..kernel.hub import Hub, discard, get_hub

__all__ = ["Condition", "Event"]

_EXPIRED = object()


class _Parked:
    """One greenthread waiting in ``Condition.wait`` or ``Event.wait``."""

    __slots__ = ("g", "hub", "thread", "ticket", "waiting", "notified")

    def __init__(self, hub: Hub) -> None:
        self.g = getcurrent()
        self.hub = hub
        self.thread = _real_get_ident()
        #: Popped by whoever ends the wait (list.pop is atomic between threads).
        self.ticket = [True]
        #: Still inside ``park`` (only ever read and written in the waiter's thread).
        self.waiting = True
        self.notified = False

    def claim(self) -> bool:
        """Take the right to end this wait; False if someone already has."""
        try:
            self.ticket.pop()
        except IndexError:
            return False
        return True

    def wake(self) -> bool:
        """Wake this waiter as notified (from any thread); False if its wait already ended."""
        if not self.claim():
            return False
        if self.thread == _real_get_ident():
            self.hub.ready.append(self._resume)
        else:
            self.hub.run_callback_threadsafe(self._resume)
        return True

    def _resume(self) -> None:
        # Runs in the waiter's hub; the waiter may have been thrown out meanwhile.
        if self.waiting:
            self.g.switch(True)

    def _expire(self) -> None:
        if self.claim():
            self.g.switch(_EXPIRED)

    def park(self, timeout: float | None, external: bool) -> bool:
        """Wait until woken or ``timeout``; sets and returns ``notified``.

        ``external``: a wake-up may come from another OS thread.  On the way out
        (also when thrown out) ``notified`` says whether a waker claimed the wait.
        """
        hub = self.hub
        if timeout is not None and timeout <= 0:
            # Only a wake-up already made counts.
            self.waiting = False
            self.notified = not self.claim()
            return self.notified
        timer = None if timeout is None else hub.schedule(timeout, self._expire)
        if external:
            hub.ref()
        got = None
        try:
            got = hub.switch()
        finally:
            self.waiting = False
            if external:
                hub.unref()
            if timer is not None:
                timer.cancel()
            if got is True:
                self.notified = True
            elif got is not _EXPIRED:
                # Thrown out (or switched to by a stranger): a waker that
                # claimed us first made the wake-up ours.
                self.notified = not self.claim()
        return self.notified


class Condition(_real_threading.Condition):
    """``threading.Condition`` for greenthreads (see the module's docstring)."""

    def __init__(self, lock: Any = None) -> None:
        if lock is None:
            from . import threading as _gthreading

            lock = _gthreading.RLock()
        super().__init__(lock)
        if not hasattr(lock, "_is_owned") and hasattr(lock, "locked"):
            # What the standard fallback (try acquire(False), release) tells,
            # for a lock that is not re-entrant, in one call.
            self._is_owned = lock.locked  # type: ignore[method-assign]
        self._waiters: deque[_Parked] = deque()  # type: ignore[assignment]
        self._thread = _real_get_ident()
        self._shared = False  # used from more than one OS thread

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notification or ``timeout``, re-acquire the lock."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _Parked(get_hub())
        if waiter.thread != self._thread:
            self._shared = True
        self._waiters.append(waiter)
        saved_state = self._release_save()  # type: ignore[attr-defined]
        try:
            return waiter.park(timeout, self._shared)
        finally:
            self._acquire_restore(saved_state)  # type: ignore[attr-defined]
            if not waiter.notified:
                discard(self._waiters, waiter)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` greenthreads waiting on this condition."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters
        me = _real_get_ident()
        while n > 0 and waiters:
            w = waiters.popleft()
            if w.thread != me:
                self._shared = True
            if w.wake():
                n -= 1

    def notify_all(self) -> None:
        """Wake every greenthread waiting on this condition."""
        self.notify(len(self._waiters))


class Event(_real_threading.Event):
    """``threading.Event`` for greenthreads: no lock, ``set`` wakes the waiters directly.

    Unlike the standard Event it has no internal Condition (``_cond``).
    """

    def __init__(self) -> None:
        self._flag = False
        self._waiters: deque[_Parked] = deque()
        self._thread = _real_get_ident()
        self._shared = False  # used from more than one OS thread

    def _at_fork_reinit(self) -> None:
        self._waiters.clear()
        self._thread = _real_get_ident()
        self._shared = False

    def set(self) -> None:
        """Set the flag and wake every greenthread waiting for it."""
        self._flag = True
        waiters = self._waiters
        if waiters:
            me = _real_get_ident()
            while waiters:
                try:
                    w = waiters.popleft()
                except IndexError:  # another OS thread took the last one
                    break
                if w.thread != me:
                    self._shared = True
                w.wake()

    def clear(self) -> None:
        """Reset the flag: waits block again until the next ``set``."""
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; return the flag."""
        if self._flag:
            return True
        waiter = _Parked(get_hub())
        if waiter.thread != self._thread:
            self._shared = True
        self._waiters.append(waiter)
        if self._flag:
            # Set from another OS thread between the check and the append.
            waiter.waiting = False
            if waiter.claim():
                discard(self._waiters, waiter)
            return True
        try:
            notified = waiter.park(timeout, self._shared)
        finally:
            if not waiter.notified:
                discard(self._waiters, waiter)
        return notified or self._flag


# Named as the standard class in reprs (``<threading.Event at ...: unset>``).
Event.__module__ = _real_threading.Event.__module__
