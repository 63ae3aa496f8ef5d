"""Waiting on file descriptors: the fd half of the hub.

The hub keeps one record (``FdState``) per fd it has been asked about: who
waits to read, who waits to write, and the readiness seen while nobody waited.
The fd is registered with the hub's poller when its record is made and stays
registered until ``notify_close``; a wait only fills a slot of the record, so
waiting costs no syscall.  The hub's loop empties a slot and switches to the
greenthread in it when the poller reports the fd.

Three ways to wait, for three kinds of caller:

* ``wait_read`` / ``wait_write``: for a caller that has just tried the real
  non-blocking call and got EAGAIN (green sockets).  Readiness is reported as
  edges, so any change after that try ends the wait; a wait may also end
  spuriously, and the caller simply tries again.
* ``wait_level`` (``trampoline``): for a caller that did not try first.  It
  checks the fd's level state with a zero-timeout ``poll`` before and after
  each wait and returns only once the fd really is ready.
* ``watch`` / ``unwatch``: one token in the slots of several fds at once (select,
  selectors).  The hub switches to the token for each fd it finds ready; the
  token wakes the waiter once, and the waiter then unwatches every fd.

A slot holds one waiter: a second greenthread reading (or writing) the same fd
at the same time gets ``ConcurrentWaitError`` rather than a hang.  Every wait
empties its slot when it leaves by an exception (timeout, kill), so a stale
wake-up never reaches a greenthread that has moved on.  ``notify_close``, called
before an fd is closed, wakes its waiters with ``IOClosed``; a record whose
file was closed without it is found and dropped by ``forget_stale``.

``FdWaits`` holds all this and is a base class of ``Hub``: the waits are the
hub's methods, and the hub's loop reads the records directly.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

from .poller import POLL_IN, POLL_OUT, LevelProbe, new_poller

_monotonic = time.monotonic

__all__ = [
    "FdWaits",
    "FdState",
    "Listener",
    "IOClosed",
    "ConcurrentWaitError",
    "READ",
    "WRITE",
    "fileno_of",
]

#: Directions of a wait (``watch``, ``wait_level``).
READ = 1
WRITE = 2


class IOClosed(OSError):
    """Raised in a greenthread whose file descriptor was closed while it waited."""

    def __init__(self, fd: int) -> None:
        super().__init__(errno.EBADF, f"file descriptor {fd} was closed while waiting on it")


class ConcurrentWaitError(RuntimeError):
    """A second greenthread tried to wait for the same direction of one fd."""


class FdState:
    """The hub's record of one fd: who waits to read, who waits to write, and
    readiness seen while nobody waited."""

    __slots__ = ("fd", "reader", "writer", "rready", "wready", "hup", "read_deadline")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: The greenlet (or ``watch`` token) to switch to when ``fd`` may be readable.
        self.reader: greenlet | None = None
        #: Likewise for writable.
        self.writer: greenlet | None = None
        #: An edge came while nobody waited, so the fd may be ready now (green
        #: socket recv consults ``rready``).  Each wait clears its own.
        self.rready = False
        self.wready = False
        #: The peer hung up or the fd has an error: its state no longer changes,
        #: so no further edge is to be expected (see green socket recv).
        self.hup = False
        #: The timer of timed reads, made at the first one (see ``ReadDeadline``).
        self.read_deadline: ReadDeadline | None = None


class Listener:
    """One waiter on an fd, as ``Hub.get_readers()``/``get_writers()`` list it."""

    __slots__ = ("fileno", "evtype", "greenlet")

    def __init__(self, fileno: int, evtype: str, waiter: Any) -> None:
        self.fileno = fileno
        #: "read" or "write" (eventlet's ``READ``/``WRITE``).
        self.evtype = evtype
        #: The greenlet parked on the fd (or the ``watch`` token standing for it).
        self.greenlet = waiter

    def __repr__(self) -> str:
        return f"<Listener {self.evtype} fd={self.fileno} {self.greenlet!r}>"


def fileno_of(fd: Any) -> int:
    """``fd`` itself if it is an int, else ``fd.fileno()``."""
    return fd if isinstance(fd, int) else fd.fileno()


class FdWaits:
    """The fd half of the hub (a base class of ``Hub``, which supplies
    ``switch()``, ``schedule()`` and the ``ready`` queue it uses)."""

    #: What a timed-out wait raises when its caller names no ``timeout_exc``
    #: (an exception instance, or a class or factory called with no arguments).
    #: The timeout layer sits above the hub and sets this to ``nettools.Timeout``
    #: when it is imported, which ``import nettools`` always does.
    default_timeout_exc: Any = TimeoutError

    ready: Any
    switch: Callable[[], Any]
    schedule: Callable[..., Any]

    def __init__(self, poller_kind: str | None = None) -> None:
        #: fd -> its record, for every fd registered with the poller.
        self.fds: dict[int, FdState] = {}
        #: Greenthreads currently parked on an fd (for deadlock detection).
        self.io_waiters = 0
        #: Timers of timed reads that outlived their wait: pending, but they wake
        #: no one (not live, for deadlock detection; see ``ReadDeadline``).
        self.idle_timers = 0
        self.poller = new_poller(self.fds, poller_kind)
        self._probe = LevelProbe()

    def record(self, fd: int) -> FdState:
        """``fd``'s record, made (and the fd registered with the poller) if it has none.

        A record made now reports the fd's current readiness at the next poll, as
        an edge: a caller may wait on it without trying the I/O first."""
        st = self.fds.get(fd)
        if st is None:
            st = FdState(fd)
            self.poller.register(fd)
            self.fds[fd] = st
        return st

    # wait_read and wait_write are the hot path of every green socket: they stay
    # two plain copies rather than one with a branch or a call per wait.

    def wait_read(self, fd: int, timeout: float | None = None, timeout_exc: Any = None) -> None:
        """Park until ``fd`` may be readable.  For callers that just got EAGAIN.

        May return spuriously; the caller retries its non-blocking call.
        """
        st = self.fds.get(fd) or self.record(fd)
        cur = getcurrent()
        if st.reader is not None:
            raise ConcurrentWaitError(
                f"second simultaneous read on fd {fd}: {st.reader!r} is already reading"
            )
        st.reader = cur
        st.rready = False
        self.io_waiters += 1
        deadline = None
        if timeout is not None:
            # The read's deadline (see ReadDeadline), without a call per wait.
            deadline = st.read_deadline or ReadDeadline(self, st)
            deadline.at = _monotonic() + timeout
            deadline.exc = timeout_exc
            if deadline.timer is not None and deadline.timer.deadline <= deadline.at:
                self.idle_timers -= 1  # the idle timer fires in time, and re-arms then
            else:
                deadline.new_timer(timeout)
        try:
            # Through Hub.switch, not inlined: greenlet keeps a frame object for
            # the frame that switched, as big as that frame (80 B more per idle
            # connection for this one's).
            self.switch()
        finally:
            self.io_waiters -= 1
            if st.reader is cur:
                st.reader = None
            if deadline is not None:
                deadline.at = None  # no timed read in progress: its timer, if any, idles
                if deadline.timer is not None:
                    self.idle_timers += 1

    def wait_write(self, fd: int, timeout: float | None = None, timeout_exc: Any = None) -> None:
        """Park until ``fd`` may be writable.  For callers that just got EAGAIN."""
        st = self.fds.get(fd) or self.record(fd)
        cur = getcurrent()
        if st.writer is not None:
            raise ConcurrentWaitError(
                f"second simultaneous write on fd {fd}: {st.writer!r} is already writing"
            )
        st.writer = cur
        st.wready = False
        self.io_waiters += 1
        timer = None if timeout is None else self.schedule(timeout, _io_timeout, cur, timeout_exc)
        try:
            # Through Hub.switch, not inlined: greenlet keeps a frame object for
            # the frame that switched, as big as that frame (80 B more per idle
            # connection for this one's).
            self.switch()
        finally:
            self.io_waiters -= 1
            if st.writer is cur:
                st.writer = None
            if timer is not None:
                timer.cancel()

    def wait_level(
        self, fd: int, direction: int, timeout: float | None = None, timeout_exc: Any = None
    ) -> None:
        """Park until ``fd`` really is ready for ``direction`` (READ or WRITE), or
        has an error or hang-up.  Safe without trying the I/O first.

        ``timeout_exc`` (default ``default_timeout_exc``) is raised after
        ``timeout`` seconds.
        """
        mask = POLL_IN if direction == READ else POLL_OUT
        if self.probe(fd, mask):
            return
        self.forget_stale(fd)
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = self.wait_read if direction == READ else self.wait_write
        while True:
            remaining = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout_error(timeout_exc)
            wait(fd, remaining, timeout_exc)
            if self.probe(fd, mask):
                return

    def watch(self, fd: int, direction: int, token: Any) -> None:
        """Put ``token`` in ``fd``'s READ or WRITE slot; the hub calls ``token.switch()``
        (once, from the hub) when the fd may be ready in that direction.

        For waits on several fds at once (select, selectors): the caller parks
        itself, and must ``unwatch`` every fd afterwards, however it was woken.
        If the fd is closed meanwhile, the hub calls ``token.throw(IOClosed(fd))``.
        """
        st = self.fds.get(fd) or self.record(fd)
        if direction == READ:
            if st.reader is not None and st.reader is not token:
                raise ConcurrentWaitError(f"second simultaneous read on fd {fd}")
            st.reader = token
            st.rready = False
        else:
            if st.writer is not None and st.writer is not token:
                raise ConcurrentWaitError(f"second simultaneous write on fd {fd}")
            st.writer = token
            st.wready = False
        self.io_waiters += 1

    def unwatch(self, fd: int, direction: int, token: Any) -> None:
        """Undo one ``watch``."""
        self.io_waiters -= 1
        st = self.fds.get(fd)
        if st is None:
            return
        if direction == READ:
            if st.reader is token:
                st.reader = None
        elif st.writer is token:
            st.writer = None

    def probe(self, fd: int, events: int) -> int:
        """Level-triggered readiness of ``fd`` right now (a zero-timeout poll for
        ``events``, e.g. ``POLL_IN``); 0 if not ready."""
        return self._probe(fd, events)

    def get_readers(self) -> list[Listener]:
        """The greenthreads waiting to read, one ``Listener`` per fd."""
        fds = self.fds.items()
        return [Listener(fd, "read", st.reader) for fd, st in fds if st.reader is not None]

    def get_writers(self) -> list[Listener]:
        """The greenthreads waiting to write, one ``Listener`` per fd."""
        fds = self.fds.items()
        return [Listener(fd, "write", st.writer) for fd, st in fds if st.writer is not None]

    def notify_close(self, fd: int) -> None:
        """Tell the hub ``fd`` is about to be closed: its waiters get ``IOClosed``.

        Call it *before* closing the fd.
        """
        st = self.fds.pop(fd, None)
        if st is None:
            return
        self.poller.unregister(fd)
        deadline = st.read_deadline
        if deadline is not None:
            st.read_deadline = None  # no cycle left for the collector
            if deadline.timer is not None:
                deadline.timer.cancel()
                deadline.timer = None
                if deadline.at is None:
                    self.idle_timers -= 1
        if st.reader is not None or st.writer is not None:
            self.ready.append(lambda: _throw_closed(st))

    def notify_opened(self, fd: int) -> None:
        """Tell the hub ``fd`` is a new file: forget anything known about an old one."""
        if fd in self.fds:
            self.notify_close(fd)

    def forget_stale(self, fd: int) -> None:
        """Forget the record of ``fd`` if the file it was made for is gone.

        A file closed behind the hub's back (a socket finalised in another
        thread, a raw ``os.close``) leaves its record, and epoll has dropped the
        registration with the file: a wait on a new file under that number
        would park on a record nothing reports.  Waits on fds the caller did
        not open through nettools call this first; it costs one syscall, so the
        green sockets' hot path relies on ``notify_opened`` instead.
        """
        if fd in self.fds and not self.poller.registered(fd):
            self.notify_close(fd)


def _timeout_error(exc: Any) -> BaseException:
    """``None``: ``FdWaits.default_timeout_exc``; an exception instance: itself;
    a class or factory: called with no arguments."""
    if exc is None:
        exc = FdWaits.default_timeout_exc
    if isinstance(exc, BaseException):
        return exc
    return exc()


def _io_timeout(g: greenlet, exc: Any) -> None:
    g.throw(_timeout_error(exc))


class ReadDeadline:
    """The timeout of an fd's timed reads: one timer that outlives the waits.

    A connection read under an idle timeout waits once per message, and a timer
    made and cancelled per wait (an object, a heap push, a cancel) cost more than
    the rest of the wait.  So a timed read only sets ``at``, its deadline; the
    timer is made once and fires at the earliest deadline it was made for.  Then
    it ends the read in progress if that read is due, re-arms itself for the
    read's later deadline if not, and lapses if no timed read is in progress.  A
    read whose deadline comes before the pending timer's cancels it and makes
    its own.  A pending timer with no timed read in progress wakes no one: the
    hub counts it in ``idle_timers`` rather than as live (deadlock detection).
    """

    __slots__ = ("hub", "st", "at", "exc", "timer")

    def __init__(self, hub: FdWaits, st: FdState) -> None:
        self.hub = hub
        self.st = st
        #: The deadline of the timed read in progress (None: none in progress).
        self.at: float | None = None
        self.exc: Any = None
        #: The pending timer, or None.
        self.timer: Any = None
        st.read_deadline = self

    def new_timer(self, timeout: float) -> None:
        """A timed read that ends in ``timeout`` seconds starts (``at`` is set),
        and the pending timer, if any, would fire too late: replace it.

        (A read whose deadline the pending timer meets only sets ``at``: the
        timer then re-arms itself for it; ``wait_read`` does that inline.)"""
        timer = self.timer
        if timer is not None:
            self.hub.idle_timers -= 1  # it was idle: no timed read was in progress
            timer.cancel()
        self.timer = self.hub.schedule(timeout, _read_deadline_due, self)


def _read_deadline_due(deadline: ReadDeadline) -> None:
    deadline.timer = None
    at = deadline.at
    if at is None:
        deadline.hub.idle_timers -= 1  # lapses: no timed read in progress
        return
    left = at - time.monotonic()
    if left > 0:
        deadline.timer = deadline.hub.schedule(left, _read_deadline_due, deadline)
        return
    g = deadline.st.reader
    if g is not None:
        g.throw(_timeout_error(deadline.exc))


def _throw_closed(st: FdState) -> None:
    for attr in ("reader", "writer"):
        g = getattr(st, attr)
        if g is not None:
            setattr(st, attr, None)
            g.throw(IOClosed(st.fd))  # a watch() token must offer throw() too
