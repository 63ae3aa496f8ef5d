"""How a green zmq socket waits: its watch on ``ZMQ_FD`` and the rules that lose no wake-up.

Used by ``sockets`` (send, recv, the other calls that drain the mailbox), ``polling``
(``Poller``) and ``proxying`` (the proxy loop); each calls into a socket's ``Watch``.

How no wake-up is lost
----------------------
Every call is tried first with ``NOBLOCK``; only ``Again`` makes a greenthread wait.

libzmq offers one file descriptor per socket, ``ZMQ_FD``, for both directions.  It is not
readiness: it is the socket's command mailbox, and it becomes readable (an *edge*) when
commands arrive that may change the socket's state.  ``getsockopt(EVENTS)`` drains the whole
mailbox and returns the state (``POLLIN``/``POLLOUT``); ``send`` and ``recv`` drain it too,
whenever they process commands.  After a drain the fd is not readable, so the next state
change makes it readable again -- a new edge.  And an edge drained before the hub polled is
never reported: Linux checks the fd again before reporting it.  So any call, by any
greenthread, may consume the edge that another greenthread was waiting for.  The rules:

1. **Never sleep without first checking EVENTS.**  A greenthread that got ``Again`` puts
   itself in the socket's readers or writers, then reads EVENTS.  If its direction is
   ready it retries at once.  Otherwise the drain just done guarantees that the next
   change raises an edge, and the socket's watch token is in the hub's READ slot for
   ``ZMQ_FD`` (epoll, edge-triggered, registered once for the socket's life) before the
   greenthread switches to the hub, so that edge is seen.
2. **After every call that may have drained the mailbox -- a send or recv (successful or
   not, blocking or ``NOBLOCK``), an EVENTS read, a poll, a bind, connect, unbind or
   disconnect -- if anyone waits on the socket, read EVENTS and wake the waiters whose
   direction is ready.**  The greenthread that consumed an edge thus hands it on; a
   reader that took one of several queued messages wakes the next reader; a send that
   drained an "a message came in" command wakes the readers.  To keep the hot path lean
   the read is queued, once per socket and hub turn, to run before the hub next polls;
   a greenthread about to sleep instead reads EVENTS at once and wakes the other
   direction if it is ready.
3. **When the token fires, read EVENTS** and wake the ready side; if someone is still
   waiting, re-arm (the read was a drain, so rule 1's guarantee holds again).
4. Waking is by the ready queue with a per-wait token that fires once, so a greenthread
   that left its wait (timeout, kill) can never be woken by a stale wake-up; every waiter
   of the ready direction is woken (each retries; those that lose re-check EVENTS before
   sleeping again), so a waiter that is killed before it runs takes no wake-up with it.
5. The watch token leaves the hub's slot when the last waiter leaves (the hub's deadlock
   detection counts it), and ``close()`` drops the fd from the hub and wakes everyone.

``Poller`` follows the same rules: it reads EVENTS of each green socket itself (waking that
socket's other waiters as in rule 2), and while it sleeps it stands in the readers and/or
writers of each green socket it polls; plain file descriptors are watched on the hub.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import zmq
import zmq.backend
from greenlet import getcurrent

from ...kernel.fdwait import READ, ConcurrentWaitError
from ...kernel.hub import get_hub
from .._waits import BUSY_POLL

if TYPE_CHECKING:
    from .sockets import Socket

__all__ = ["Waiter", "Watch", "wake_all", "EXPIRED"]

# The C-level calls (pyzmq's backend class): each makes one libzmq call, without the
# green layer (which would wait, and hand on edges).
c_socket = zmq.backend.Socket
c_send = c_socket.send
c_recv = c_socket.recv
c_get = c_socket.get
c_recv_into = getattr(c_socket, "recv_into", None)

# Plain ints for flags: IntFlag arithmetic is slow on the hot path.  Options stay enum
# members: pyzmq's get() looks its argument up in SocketOption, and a member is its fast path.
NOBLOCK = int(zmq.NOBLOCK)
SNDMORE = int(zmq.SNDMORE)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
EVENTS = zmq.SocketOption.EVENTS
FD = zmq.SocketOption.FD
TYPE = zmq.SocketOption.TYPE

#: What a wait's timer switches in.
EXPIRED = object()

_Again = zmq.Again
_ZMQError = zmq.ZMQError
_monotonic = time.monotonic


def _timed_out() -> zmq.Again:
    """The ``Again`` libzmq raises when RCVTIMEO/SNDTIMEO runs out, marked as a
    timeout (``nettools.is_timeout`` is true for it)."""
    exc = _Again()
    exc.is_timeout = True
    return exc


class Waiter:
    """One wait of one greenthread: fires once, by a wake-up, its timer, or a closed fd."""

    __slots__ = ("g", "fired")

    def __init__(self, g: Any) -> None:
        self.g = g
        self.fired = False

    def switch(self, value: Any = True) -> None:
        if not self.fired:
            self.fired = True
            self.g.switch(value)

    def throw(self, *args: Any) -> None:
        # A watched fd was closed: wake up; the caller's re-check reports it.
        self.switch()

    def expire(self) -> None:
        self.switch(EXPIRED)


def wake_all(waiters: deque, ready: deque) -> None:
    while waiters:
        ready.append(waiters.popleft().switch)


class Watch:
    """A green socket's waiters and its token in the hub's READ slot for ``ZMQ_FD``."""

    __slots__ = ("sock", "readers", "writers", "fd", "hub", "armed", "timer", "poked")

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        self.readers: deque[Waiter] = deque()
        self.writers: deque[Waiter] = deque()
        self.fd = -1
        self.hub: Any = None  # the hub whose slot holds us while armed
        self.armed = False
        self.timer: Any = None  # fallback poll timer while another token holds the slot
        self.poked = False  # a kick is queued for this hub turn

    # -- the hub's token protocol (called from the hub's greenlet) --

    def switch(self, *args: Any) -> None:
        """``ZMQ_FD`` had an edge: see what changed (rule 3)."""
        self._fired()
        self.kick()

    def throw(self, *args: Any) -> None:
        """The fd was dropped from the hub (closed): everyone retries and sees why."""
        self._fired()
        ready = get_hub().ready
        wake_all(self.readers, ready)
        wake_all(self.writers, ready)

    def _fired(self) -> None:
        if self.armed:
            self.armed = False
            self.hub.io_waiters -= 1  # as hub.unwatch: the hub already emptied the slot
        self.timer = None

    # -- waking --

    def kick(self) -> None:
        """Read EVENTS and wake the waiters whose direction is ready (rule 2)."""
        if not (self.readers or self.writers):
            return
        try:
            events = c_get(self.sock, EVENTS)
        except _ZMQError:
            events = POLLIN | POLLOUT  # closed or terminated: the retry raises it
        self.wake(events)

    def poke(self) -> None:
        """Kick once this hub turn, after calls that may have drained the mailbox.

        One EVENTS read per socket and turn, however many calls a greenthread makes
        before it yields: the read comes after all of them, and the hub polls no fd
        before it has run, so no edge is lost in between.
        """
        if not self.poked:
            self.poked = True
            get_hub().ready.append(self._poked)

    def _poked(self) -> None:
        self.poked = False
        self.kick()

    def wake(self, events: int) -> None:
        """Wake by an EVENTS value just read; keep watching for whoever still waits."""
        ready = get_hub().ready
        if events & POLLIN and self.readers:
            wake_all(self.readers, ready)
        if events & POLLOUT and self.writers:
            wake_all(self.writers, ready)
        if self.readers or self.writers:
            self.arm()

    def arm(self) -> None:
        """Put the token in the hub's READ slot for ``ZMQ_FD`` (only right after a drain)."""
        if self.armed or self.timer is not None:
            return
        hub = get_hub()
        fd = self.fd
        if fd < 0:
            fd = self.fd = c_get(self.sock, FD)
        self.hub = hub
        try:
            hub.watch(fd, READ, self)
        except ConcurrentWaitError:
            # Someone else's code waits on this socket's fd (a shadow socket, a select
            # on sock.FD): poll EVENTS every few milliseconds instead.
            self.timer = hub.schedule(BUSY_POLL, self.switch)
            return
        self.armed = True

    def disarm(self) -> None:
        """Leave the hub's slot: nobody waits any more."""
        if self.armed:
            self.armed = False
            self.hub.unwatch(self.fd, READ, self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- waiting --

    def wait(self, reading: bool, deadline: float | None) -> None:
        """Park until the socket may be ready in one direction (rule 1).

        Raises ``Again`` at ``deadline``.  May return spuriously: the caller retries.
        """
        sock = self.sock
        mine, theirs = (self.readers, self.writers) if reading else (self.writers, self.readers)
        want, other = (POLLIN, POLLOUT) if reading else (POLLOUT, POLLIN)
        waiter = Waiter(getcurrent())
        mine.append(waiter)
        timer = None
        try:
            try:
                events = c_get(sock, EVENTS)
            except _ZMQError:
                return  # closed or terminated: the retry raises it
            if events & want:
                return
            if events & other and theirs:
                wake_all(theirs, get_hub().ready)
            self.arm()
            hub = get_hub()
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    raise _timed_out()
                timer = hub.schedule(left, waiter.expire)
            if hub.switch() is EXPIRED:
                raise _timed_out()
        finally:
            waiter.fired = True
            if timer is not None:
                timer.cancel()
            try:
                mine.remove(waiter)
            except ValueError:
                pass  # a waker took it
            if not (self.readers or self.writers):
                self.disarm()

    def close(self) -> None:
        """The socket is closing: forget its fd in the hub, wake every waiter."""
        hub = self.hub
        if hub is None:
            return  # never waited on: the hub knows nothing of it (and nobody waits)
        self.disarm()
        if self.fd >= 0:
            hub.notify_close(self.fd)
            self.fd = -1
        wake_all(self.readers, hub.ready)
        wake_all(self.writers, hub.ready)

