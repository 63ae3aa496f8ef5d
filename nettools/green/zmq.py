"""A drop-in green ``zmq`` (pyzmq): blocking calls wait on the hub, never on the OS thread.

``from nettools.green import zmq`` (or ``from nettools import zmq``) gives pyzmq's whole
namespace -- constants, ``ZMQError``, ``Again``, ``Frame``, ``zmq_version``... -- with green
``Context``, ``Socket``, ``Poller``, ``select``, ``proxy``, ``proxy_steerable`` and ``device``.
``Socket`` subclasses ``zmq.Socket``: ``send``/``recv`` (and ``recv_into``) are green, and the
helpers pyzmq builds on them (``send_multipart``, ``send_string``, ``send_json``,
``send_pyobj``, their ``recv_`` twins, ``send_serialized``...) are green through them.
``NOBLOCK`` behaves as in pyzmq; ``RCVTIMEO``/``SNDTIMEO`` raise ``zmq.Again`` on time;
closing a socket wakes its waiters, whose call then raises pyzmq's ``ZMQError(ENOTSOCK)``.
``Context.term()`` runs in the thread pool, so a greenthread blocked on a socket gets
``ContextTerminated`` while the hub keeps running, as a blocked thread would with pyzmq.

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

import struct as _struct
import sys as _sys
import time as _time
from collections import deque as _deque
from typing import Any

import zmq as _zmq
import zmq.backend as _zmq_backend
from greenlet import getcurrent as _getcurrent
from zmq import *  # noqa: F403 - a drop-in module re-exports everything

from ..kernel import tpool as _tpool
from ..kernel.fdwait import READ as _READ
from ..kernel.fdwait import WRITE as _WRITE
from ..kernel.fdwait import ConcurrentWaitError as _ConcurrentWaitError
from ..kernel.hub import current_hub as _current_hub
from ..kernel.hub import get_hub as _get_hub
from ._waits import BUSY_POLL as _BUSY_POLL
from ._waits import forget_idle as _forget_idle

__all__ = list(_zmq.__all__)
for _name in ("proxy_steerable", "select"):
    if _name not in __all__:
        __all__.append(_name)

_Again = _zmq.Again
_ZMQError = _zmq.ZMQError
_base_socket = _zmq.Socket
_base_context = _zmq.Context
_base_poller = _zmq.Poller
# The C-level calls (pyzmq's backend class): each makes one libzmq call.
_c_socket = _zmq_backend.Socket
_c_send = _c_socket.send
_c_recv = _c_socket.recv
_c_get = _c_socket.get
_c_recv_into = getattr(_c_socket, "recv_into", None)
_zmq_poll = _zmq.zmq_poll
_BUFFERS = (_zmq.Frame, memoryview, bytearray)

# Plain ints for flags: IntFlag arithmetic is slow on the hot path.  Options stay enum
# members: pyzmq's get() looks its argument up in SocketOption, and a member is its fast path.
_NOBLOCK = int(_zmq.NOBLOCK)
_SNDMORE = int(_zmq.SNDMORE)
_POLLIN = int(_zmq.POLLIN)
_POLLOUT = int(_zmq.POLLOUT)
_EVENTS = _zmq.SocketOption.EVENTS
_FD = _zmq.SocketOption.FD
_RCVTIMEO = _zmq.SocketOption.RCVTIMEO
_SNDTIMEO = _zmq.SocketOption.SNDTIMEO
_TYPE = _zmq.SocketOption.TYPE
_monotonic = _time.monotonic

_EXPIRED = object()  # what a wait's timer switches in


def __getattr__(name: str) -> Any:
    """Anything else pyzmq offers (submodules such as ``zmq.error``, private helpers)."""
    return getattr(_zmq, name)


class _Waiter:
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
        self.switch(_EXPIRED)


def _wake_all(waiters: _deque, ready: _deque) -> None:
    while waiters:
        ready.append(waiters.popleft().switch)


class _Watch:
    """A green socket's waiters and its token in the hub's READ slot for ``ZMQ_FD``."""

    __slots__ = ("sock", "readers", "writers", "fd", "hub", "armed", "timer", "poked")

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        self.readers: _deque[_Waiter] = _deque()
        self.writers: _deque[_Waiter] = _deque()
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
        ready = _get_hub().ready
        _wake_all(self.readers, ready)
        _wake_all(self.writers, ready)

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
            events = _c_get(self.sock, _EVENTS)
        except _ZMQError:
            events = _POLLIN | _POLLOUT  # closed or terminated: the retry raises it
        self.wake(events)

    def poke(self) -> None:
        """Kick once this hub turn, after calls that may have drained the mailbox.

        One EVENTS read per socket and turn, however many calls a greenthread makes
        before it yields: the read comes after all of them, and the hub polls no fd
        before it has run, so no edge is lost in between.
        """
        if not self.poked:
            self.poked = True
            _get_hub().ready.append(self._poked)

    def _poked(self) -> None:
        self.poked = False
        self.kick()

    def wake(self, events: int) -> None:
        """Wake by an EVENTS value just read; keep watching for whoever still waits."""
        ready = _get_hub().ready
        if events & _POLLIN and self.readers:
            _wake_all(self.readers, ready)
        if events & _POLLOUT and self.writers:
            _wake_all(self.writers, ready)
        if self.readers or self.writers:
            self.arm()

    def arm(self) -> None:
        """Put the token in the hub's READ slot for ``ZMQ_FD`` (only right after a drain)."""
        if self.armed or self.timer is not None:
            return
        hub = _get_hub()
        fd = self.fd
        if fd < 0:
            fd = self.fd = _c_get(self.sock, _FD)
        self.hub = hub
        try:
            hub.watch(fd, _READ, self)
        except _ConcurrentWaitError:
            # Someone else's code waits on this socket's fd (a shadow socket, a select
            # on sock.FD): poll EVENTS every few milliseconds instead.
            self.timer = hub.schedule(_BUSY_POLL, self.switch)
            return
        self.armed = True

    def disarm(self) -> None:
        """Leave the hub's slot: nobody waits any more."""
        if self.armed:
            self.armed = False
            self.hub.unwatch(self.fd, _READ, self)
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
        want, other = (_POLLIN, _POLLOUT) if reading else (_POLLOUT, _POLLIN)
        waiter = _Waiter(_getcurrent())
        mine.append(waiter)
        timer = None
        try:
            try:
                events = _c_get(sock, _EVENTS)
            except _ZMQError:
                return  # closed or terminated: the retry raises it
            if events & want:
                return
            if events & other and theirs:
                _wake_all(theirs, _get_hub().ready)
            self.arm()
            hub = _get_hub()
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    raise _Again()
                timer = hub.schedule(left, waiter.expire)
            if hub.switch() is _EXPIRED:
                raise _Again()
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
        _wake_all(self.readers, hub.ready)
        _wake_all(self.writers, hub.ready)


def _deadline(sock: Socket, option: int) -> float | None:
    """The deadline RCVTIMEO/SNDTIMEO sets for a call that started now (None: none)."""
    ms = _c_get(sock, option)
    if ms < 0:
        return None
    return _monotonic() + ms / 1000.0


class Socket(_base_socket):
    """A green ``zmq.Socket``: the same API; blocking calls wait on the hub."""

    _repr_cls = "nettools.zmq.Socket"
    _w: _Watch | None = None  # declared here so pyzmq's __setattr__ stores it plainly

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._w = _Watch(self)
        hub = _current_hub()
        if hub is not None and not self._shadow:
            # A new libzmq socket has a new mailbox fd: whatever the hub knew about that
            # fd number belongs to a file closed behind its back.  (A shadow shares the
            # fd of a socket that is alive.)
            hub.notify_opened(_c_get(self, _FD))

    # ----------------------------------------------------------- send / recv

    def send(
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> Any:
        """Like ``zmq.Socket.send``; waits on the hub while the queue is full."""
        if routing_id is not None or group is not None:
            # pyzmq's own send attaches them to a Frame; do it once, then retry that Frame.
            if not isinstance(data, _zmq.Frame):
                data = _zmq.Frame(
                    data, track=track, copy=copy or None, copy_threshold=self.copy_threshold
                )
            if routing_id is not None:
                data.routing_id = routing_id
            if group is not None:
                data.group = group
        w = self._w
        try:
            return _c_send(self, data, flags | _NOBLOCK, copy, track)
        except _Again:
            if flags & _NOBLOCK:
                raise
            return self._block(False, _c_send, (data, flags | _NOBLOCK, copy, track))
        finally:
            if w.readers or w.writers:
                w.poke()

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """Like ``zmq.Socket.recv``; waits on the hub until a message arrives."""
        w = self._w
        try:
            return _c_recv(self, flags | _NOBLOCK, copy, track)
        except _Again:
            if flags & _NOBLOCK:
                raise
            return self._block(True, _c_recv, (flags | _NOBLOCK, copy, track))
        finally:
            if w.readers or w.writers:
                w.poke()

    if _c_recv_into is not None:

        def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:
            """Like ``zmq.Socket.recv_into``; waits on the hub until a message arrives."""
            w = self._w
            try:
                return _c_recv_into(self, buffer, nbytes=nbytes, flags=flags | _NOBLOCK)
            except _Again:
                if flags & _NOBLOCK:
                    raise

                def call(sock: Socket) -> int:
                    return _c_recv_into(sock, buffer, nbytes=nbytes, flags=flags | _NOBLOCK)

                return self._block(True, call, ())
            finally:
                if w.readers or w.writers:
                    w.poke()

    def send_multipart(
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kw: Any
    ) -> Any:
        """Like ``zmq.Socket.send_multipart``; waits on the hub for the first frame only.

        libzmq counts its high-water marks in whole messages, so once the first frame
        is queued the others are too: no other greenthread's frames can come between.
        """
        if kw or len(msg_parts) < 2:
            return super().send_multipart(msg_parts, flags, copy, track, **kw)
        for i, part in enumerate(msg_parts):
            # Refuse before the first frame goes: half a message would merge with the next.
            if type(part) is not bytes and not isinstance(part, _BUFFERS):
                try:
                    memoryview(part)
                except TypeError:
                    raise TypeError(
                        f"Frame {i} ({part!r:.32}) does not support the buffer interface."
                    ) from None
        flags = int(flags)
        more = flags | _SNDMORE
        self.send(msg_parts[0], more, copy, track)
        send = _c_send
        nb = more | _NOBLOCK
        for part in msg_parts[1:-1]:
            try:
                send(self, part, nb, copy, track)
            except _Again:
                self.send(part, more, copy, track)
        try:
            return send(self, msg_parts[-1], flags | _NOBLOCK, copy, track)
        except _Again:
            return self.send(msg_parts[-1], flags, copy, track)
        finally:
            w = self._w
            if w.readers or w.writers:
                w.poke()

    def recv_multipart(self, flags: int = 0, copy: bool = True, track: bool = False) -> list:
        """Like ``zmq.Socket.recv_multipart``; waits on the hub for the first frame only
        (libzmq delivers a message's frames together)."""
        # Frames carry their RCVMORE: cheaper than asking the socket for each part.
        frame = self.recv(flags, False, track)
        parts = [frame.bytes if copy else frame]
        if frame.more:
            recv = _c_recv
            nb = int(flags) | _NOBLOCK
            try:
                while frame.more:
                    try:
                        frame = recv(self, nb, False, track)
                    except _Again:
                        frame = self.recv(flags, False, track)
                    parts.append(frame.bytes if copy else frame)
            finally:
                w = self._w
                if w.readers or w.writers:
                    w.poke()
        return parts

    def _block(self, reading: bool, call: Any, args: tuple) -> Any:
        """The slow path after ``Again``: wait on the hub, retry, within RCVTIMEO/SNDTIMEO."""
        deadline = _deadline(self, _RCVTIMEO if reading else _SNDTIMEO)
        w = self._w
        while True:
            w.wait(reading, deadline)
            try:
                return call(self, *args)
            except _Again:
                pass

    # -------------------------------------------------------------- options

    def get(self, option: int) -> Any:
        """Like ``zmq.Socket.get``; reading EVENTS hands on any edge it consumed."""
        value = _c_get(self, option)
        if option == _EVENTS:
            w = self._w
            if w.readers or w.writers:
                w.wake(value)
        return value

    getsockopt = get  # pyzmq binds its alias to the base class's get

    # libzmq processes the socket's pending commands -- drains the mailbox -- at the
    # start of bind, connect, unbind and disconnect: afterwards, hand on the edge.

    def bind(self, addr: str) -> Any:
        """Like ``zmq.Socket.bind`` (also a context manager that unbinds)."""
        try:
            return super().bind(addr)
        finally:
            self._handed_on()

    def connect(self, addr: str) -> Any:
        """Like ``zmq.Socket.connect`` (also a context manager that disconnects)."""
        try:
            return super().connect(addr)
        finally:
            self._handed_on()

    def unbind(self, addr: str) -> None:
        """Like ``zmq.Socket.unbind``."""
        try:
            super().unbind(addr)
        finally:
            self._handed_on()

    def disconnect(self, addr: str) -> None:
        """Like ``zmq.Socket.disconnect``."""
        try:
            super().disconnect(addr)
        finally:
            self._handed_on()

    def _handed_on(self) -> None:
        w = self._w
        if w is not None and (w.readers or w.writers):
            w.poke()

    # ---------------------------------------------------------------- close

    def close(self, linger: int | None = None) -> None:
        """Close the socket; greenthreads waiting on it get ``ZMQError(ENOTSOCK)``."""
        w = self._w
        if w is not None and not self._closed:
            w.close()
        super().close(linger)

    @property
    def _poller_class(self) -> type:  # Socket.poll() builds one of these
        return Poller


class Context(_base_context):
    """A green ``zmq.Context``: its sockets are green ``Socket`` objects."""

    _socket_class = Socket
    _repr_cls = "nettools.zmq.Context"
    _instance = None  # Context.instance() must not hand out pyzmq's plain singleton
    _instance_pid = None

    _term_here = False  # set while garbage collection destroys the context

    def term(self) -> None:
        """Terminate the context, waiting in the thread pool rather than on the OS thread.

        As with pyzmq, greenthreads blocked on this context's sockets get
        ``ContextTerminated``, and ``term`` returns once every socket is closed.
        """
        hub = _current_hub()
        if (
            hub is None  # a thread without greenthreads: block as pyzmq does
            or _getcurrent() is hub.greenlet  # nothing can wait in the hub
            or self._term_here
            or _sys.is_finalizing()
        ):
            super().term()
            return
        # libzmq tells each socket through its mailbox: their fds get an edge, and
        # greenthreads waiting on them retry and see ETERM while this one waits.
        _tpool.execute(_base_context.term, self)

    def __del__(self) -> None:
        # Collected at any point of any greenthread: never switch away from there.
        self._term_here = True
        super().__del__()


# ---------------------------------------------------------------------- polling


class Poller(_base_poller):
    """A green ``zmq.Poller``: ``poll`` waits on the hub."""

    def poll(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        """Like ``zmq.Poller.poll``: ``timeout`` in milliseconds, ``None`` or < 0 for ever."""
        if timeout is None or timeout < 0:
            deadline = None
        else:
            deadline = _monotonic() + timeout / 1000.0
        while True:
            events = self._ready()
            if events or timeout == 0:
                return events
            if deadline is not None and deadline <= _monotonic():
                return events
            self._wait(deadline)

    def _ready(self) -> list[tuple[Any, int]]:
        """What is ready now (level), as ``zmq_poll`` with a zero timeout would say."""
        events: list[tuple[Any, int]] = []
        others = []
        for sock, flags in self.sockets:
            if isinstance(sock, Socket):
                ev = _c_get(sock, _EVENTS)
                w = sock._w
                if w.readers or w.writers:
                    w.wake(ev)  # we drained its mailbox: hand the edge on (rule 2)
                ev &= flags
                if ev:
                    events.append((sock, ev))
            else:
                others.append((sock, flags))
        if others:
            events.extend(_zmq_poll(others, 0))
        return events

    def _wait(self, deadline: float | None) -> None:
        """Park until something polled may have changed, or ``deadline``."""
        hub = _get_hub()
        waiter = _Waiter(_getcurrent())
        queued: list[tuple[_Watch, _deque]] = []
        watched: list[tuple[int, int]] = []
        new: list[int] = []
        busy = False
        timer = None
        try:
            for sock, flags in self.sockets:
                if isinstance(sock, Socket):
                    w = sock._w
                    if flags & _POLLIN:
                        w.readers.append(waiter)
                        queued.append((w, w.readers))
                    if flags & _POLLOUT:
                        w.writers.append(waiter)
                        queued.append((w, w.writers))
                    w.arm()  # _ready() just drained it: rule 1 holds
                    continue
                if isinstance(sock, _base_socket):
                    # A plain pyzmq socket: its fd has an edge on any change.
                    directions = [(_c_get(sock, _FD), _READ)]
                else:
                    fd = sock if isinstance(sock, int) else int(sock.fileno())
                    directions = []
                    if flags & _POLLIN:
                        directions.append((fd, _READ))
                    if flags & _POLLOUT:
                        directions.append((fd, _WRITE))
                for fd, direction in directions:
                    if fd not in hub.fds:
                        new.append(fd)
                    try:
                        hub.watch(fd, direction, waiter)
                    except (_ConcurrentWaitError, OSError):
                        busy = True  # someone else waits on it: re-check now and then
                        continue
                    watched.append((fd, direction))
            if busy:
                limit = _monotonic() + _BUSY_POLL
                deadline = limit if deadline is None else min(deadline, limit)
            if deadline is not None:
                timer = hub.schedule(max(0.0, deadline - _monotonic()), waiter.expire)
            hub.switch()
        finally:
            waiter.fired = True
            if timer is not None:
                timer.cancel()
            for w, waiters in queued:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
                if not (w.readers or w.writers):
                    w.disarm()
            for fd, direction in watched:
                hub.unwatch(fd, direction, waiter)
            for fd in new:
                _forget_idle(hub, fd)


def select(
    rlist: list, wlist: list, xlist: list, timeout: float | None = None
) -> tuple[list, list, list]:
    """Like ``zmq.select``: ``timeout`` in seconds, ``None`` for ever."""
    poller = Poller()
    for s in dict.fromkeys(list(rlist) + list(wlist) + list(xlist)):
        flags = 0
        if s in rlist:
            flags |= _POLLIN
        if s in wlist:
            flags |= _POLLOUT
        if s in xlist:
            flags |= _zmq.POLLERR
        poller.register(s, flags)
    ms = None if timeout is None or timeout < 0 else timeout * 1000.0
    ready = dict(poller.poll(ms))
    return (
        [s for s in rlist if ready.get(s, 0) & _POLLIN],
        [s for s in wlist if ready.get(s, 0) & _POLLOUT],
        [s for s in xlist if ready.get(s, 0) & _zmq.POLLERR],
    )


# ------------------------------------------------------------------- proxies


class _Side:
    """Counts of one proxy socket, as libzmq's STATISTICS reports them."""

    __slots__ = ("msg_in", "bytes_in", "msg_out", "bytes_out")

    def __init__(self) -> None:
        self.msg_in = self.bytes_in = self.msg_out = self.bytes_out = 0


#: Messages one proxy direction moves before letting other greenthreads run.
PROXY_BURST = 1000


def _wait_recv(sock: Socket) -> Any:
    """A green recv of a frame that outlasts RCVTIMEO: a proxy ends only on errors."""
    while True:
        try:
            return sock.recv(0, False)
        except _Again:
            pass


def _wait_send(sock: Socket, frame: Any, more: bool) -> None:
    """A green send of a frame that outlasts SNDTIMEO (see ``_wait_recv``)."""
    while True:
        try:
            sock.send(frame, _SNDMORE if more else 0, False)
            return
        except _Again:
            pass


def _forward(
    src: Socket, dst: Socket, capture: Socket | None, src_side: _Side, dst_side: _Side, running: Any
) -> None:
    """Move whole messages from ``src`` to ``dst`` for ever (one proxy direction).

    Frames are moved as they are (no copy into Python), tried without waiting first; a
    burst ends when ``src`` is empty or after ``PROXY_BURST`` messages, and only then are
    the sockets' other waiters kicked (rule 2, once per burst).  High-water marks count
    whole messages, so the rest of a message never waits once its first frame is queued.
    """
    recv, send = _c_recv, _c_send
    nb, nbmore = _NOBLOCK, _NOBLOCK | _SNDMORE
    sw, dw = src._w, dst._w
    while True:
        if not running.ready():
            running.wait()
        n = 0
        try:
            while n < PROXY_BURST:
                try:
                    frame = recv(src, nb, False)
                except _Again:
                    if n:
                        break
                    frame = _wait_recv(src)
                if not running.ready():
                    running.wait()  # PAUSEd while this message came in: hold it
                size = 0
                while True:
                    size += len(frame)
                    more = frame.more
                    if capture is not None:
                        _wait_send(capture, frame, more)
                    try:
                        send(dst, frame, nbmore if more else nb, False)
                    except _Again:
                        _wait_send(dst, frame, more)
                    if not more:
                        break
                    frame = recv(src, nb, False)
                src_side.msg_in += 1
                src_side.bytes_in += size
                dst_side.msg_out += 1
                dst_side.bytes_out += size
                n += 1
        finally:
            if sw.readers or sw.writers:
                sw.poke()
            if dw.readers or dw.writers:
                dw.poke()
        if n >= PROXY_BURST:
            _get_hub().yield_ready()


def _stats_frames(front: _Side, back: _Side) -> list[bytes]:
    return [
        _struct.pack("=Q", v)
        for v in (
            front.msg_in,
            front.bytes_in,
            front.msg_out,
            front.bytes_out,
            back.msg_in,
            back.bytes_in,
            back.msg_out,
            back.bytes_out,
        )
    ]


def _steer(control: Socket, running: Any, front: _Side, back: _Side) -> None:
    """Serve the control socket until TERMINATE (then return)."""
    rep = control.get(_TYPE) == _zmq.REP
    while True:
        cmd = control.recv()
        reply = [b""]
        if cmd == b"PAUSE":
            if running.ready():
                running.reset()
        elif cmd == b"RESUME":
            if not running.ready():
                running.send()
        elif cmd == b"STATISTICS":
            # Sent on any control socket, as libzmq does.
            control.send_multipart(_stats_frames(front, back))
            continue
        elif cmd == b"TERMINATE":
            if rep:
                control.send(b"")
            return
        if rep:
            control.send_multipart(reply)


_SEND_ONLY = {int(_zmq.PUSH), int(_zmq.PUB)}
_RECV_ONLY = {int(_zmq.PULL), int(_zmq.SUB)}


def _can_flow(src: Socket, dst: Socket) -> bool:
    return _c_get(src, _TYPE) not in _SEND_ONLY and _c_get(dst, _TYPE) not in _RECV_ONLY


def _run_proxy(
    frontend: Socket, backend: Socket, capture: Socket | None, control: Socket | None
) -> None:
    # The kernel sits below; imported here so that importing this module stays light.
    from ..kernel.greenthread import spawn
    from ..kernel.sync import Event

    running = Event()  # sent while forwarding, reset while PAUSEd
    running.send()
    front, back = _Side(), _Side()
    done = Event()

    def finish(gt: Any) -> None:
        if done.ready():
            return
        try:
            done.send(gt.wait())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the proxy's caller
            done.send_exception(exc)

    threads = []
    # A direction exists where one end can receive and the other send (no PUSH -> PULL).
    if _can_flow(frontend, backend):
        threads.append(spawn(_forward, frontend, backend, capture, front, back, running))
    if backend is not frontend and _can_flow(backend, frontend):
        threads.append(spawn(_forward, backend, frontend, capture, back, front, running))
    if control is not None:
        threads.append(spawn(_steer, control, running, front, back))
    for t in threads:
        t.link(finish)
    try:
        done.wait()
    finally:
        for t in threads:
            t.kill()


def proxy(frontend: Socket, backend: Socket, capture: Socket | None = None) -> None:
    """Like ``zmq.proxy``, green: forward between two sockets until an error ends it.

    Returns or raises as libzmq's proxy does: ``ContextTerminated`` when the context is
    terminated, ``ZMQError(ENOTSOCK)`` when a socket is closed under it.
    """
    _run_proxy(frontend, backend, capture, None)


def proxy_steerable(
    frontend: Socket, backend: Socket, capture: Socket | None = None, control: Socket | None = None
) -> None:
    """Like ``zmq.proxy_steerable``, green; ``control`` takes PAUSE, RESUME, TERMINATE
    and STATISTICS (eight native uint64 frames: frontend messages in, bytes in, messages
    out, bytes out, then the same for the backend).  A REP control socket gets a reply to
    every command (an empty frame for the first three); TERMINATE makes this return."""
    _run_proxy(frontend, backend, capture, control)


def device(device_type: int, frontend: Socket, backend: Socket) -> None:
    """Like ``zmq.device``, green: the type (QUEUE, FORWARDER, STREAMER) is informative."""
    _run_proxy(frontend, backend, None, None)
