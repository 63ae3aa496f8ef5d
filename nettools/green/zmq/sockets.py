"""The green ``Socket`` and ``Context``: pyzmq's, with every blocking call waiting on the hub.

Each call is tried first with ``NOBLOCK``; on ``Again`` the greenthread waits on the
socket's ``Watch``, and every call that may have drained libzmq's mailbox hands the edge
on to the socket's other waiters (the rules are in ``watch``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import zmq
from greenlet import getcurrent

from ...kernel import tpool
from ...kernel.hub import current_hub
from .watch import EVENTS, FD, NOBLOCK, SNDMORE, Watch, c_get, c_recv, c_recv_into, c_send

__all__ = ["Socket", "Context"]

_Again = zmq.Again
_BUFFERS = (zmq.Frame, memoryview, bytearray)
_RCVTIMEO = zmq.SocketOption.RCVTIMEO
_SNDTIMEO = zmq.SocketOption.SNDTIMEO
_monotonic = time.monotonic


def _deadline(sock: Socket, option: int) -> float | None:
    """The deadline RCVTIMEO/SNDTIMEO sets for a call that started now (None: none)."""
    ms = c_get(sock, option)
    if ms < 0:
        return None
    return _monotonic() + ms / 1000.0


class Socket(zmq.Socket):
    """A green ``zmq.Socket``: the same API; blocking calls wait on the hub."""

    _repr_cls = "nettools.zmq.Socket"
    #: The socket's waiters and its hub token, shared with ``Poller`` and the proxy loop
    #: (declared here so that pyzmq's ``__setattr__`` stores it plainly, not as an option).
    watch: Watch | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = Watch(self)
        hub = current_hub()
        if hub is not None and not self._shadow:
            # A new libzmq socket has a new mailbox fd: whatever the hub knew about that
            # fd number belongs to a file closed behind its back.  (A shadow shares the
            # fd of a socket that is alive.)
            hub.notify_opened(c_get(self, FD))

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
            if not isinstance(data, zmq.Frame):
                data = zmq.Frame(
                    data, track=track, copy=copy or None, copy_threshold=self.copy_threshold
                )
            if routing_id is not None:
                data.routing_id = routing_id
            if group is not None:
                data.group = group
        w = self.watch
        try:
            return c_send(self, data, flags | NOBLOCK, copy, track)
        except _Again:
            if flags & NOBLOCK:
                raise
            return self._block(False, c_send, (data, flags | NOBLOCK, copy, track))
        finally:
            if w.readers or w.writers:
                w.poke()

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """Like ``zmq.Socket.recv``; waits on the hub until a message arrives."""
        w = self.watch
        try:
            return c_recv(self, flags | NOBLOCK, copy, track)
        except _Again:
            if flags & NOBLOCK:
                raise
            return self._block(True, c_recv, (flags | NOBLOCK, copy, track))
        finally:
            if w.readers or w.writers:
                w.poke()

    if c_recv_into is not None:

        def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:
            """Like ``zmq.Socket.recv_into``; waits on the hub until a message arrives."""
            w = self.watch
            try:
                return c_recv_into(self, buffer, nbytes=nbytes, flags=flags | NOBLOCK)
            except _Again:
                if flags & NOBLOCK:
                    raise

                def call(sock: Socket) -> int:
                    return c_recv_into(sock, buffer, nbytes=nbytes, flags=flags | NOBLOCK)

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
        more = flags | SNDMORE
        self.send(msg_parts[0], more, copy, track)
        send = c_send
        nb = more | NOBLOCK
        for part in msg_parts[1:-1]:
            try:
                send(self, part, nb, copy, track)
            except _Again:
                self.send(part, more, copy, track)
        try:
            return send(self, msg_parts[-1], flags | NOBLOCK, copy, track)
        except _Again:
            return self.send(msg_parts[-1], flags, copy, track)
        finally:
            w = self.watch
            if w.readers or w.writers:
                w.poke()

    def recv_multipart(self, flags: int = 0, copy: bool = True, track: bool = False) -> list:
        """Like ``zmq.Socket.recv_multipart``; waits on the hub for the first frame only
        (libzmq delivers a message's frames together)."""
        # Frames carry their RCVMORE: cheaper than asking the socket for each part.
        frame = self.recv(flags, False, track)
        parts = [frame.bytes if copy else frame]
        if frame.more:
            recv = c_recv
            nb = int(flags) | NOBLOCK
            try:
                while frame.more:
                    try:
                        frame = recv(self, nb, False, track)
                    except _Again:
                        frame = self.recv(flags, False, track)
                    parts.append(frame.bytes if copy else frame)
            finally:
                w = self.watch
                if w.readers or w.writers:
                    w.poke()
        return parts

    def _block(self, reading: bool, call: Any, args: tuple) -> Any:
        """The slow path after ``Again``: wait on the hub, retry, within RCVTIMEO/SNDTIMEO."""
        deadline = _deadline(self, _RCVTIMEO if reading else _SNDTIMEO)
        w = self.watch
        while True:
            w.wait(reading, deadline)
            try:
                return call(self, *args)
            except _Again:
                pass

    # -------------------------------------------------------------- options

    def get(self, option: int) -> Any:
        """Like ``zmq.Socket.get``; reading EVENTS hands on any edge it consumed."""
        value = c_get(self, option)
        if option == EVENTS:
            w = self.watch
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
        w = self.watch
        if w is not None and (w.readers or w.writers):
            w.poke()

    # ---------------------------------------------------------------- close

    def close(self, linger: int | None = None) -> None:
        """Close the socket; greenthreads waiting on it get ``ZMQError(ENOTSOCK)``."""
        w = self.watch
        if w is not None and not self._closed:
            w.close()
        super().close(linger)

    @property
    def _poller_class(self) -> type:  # Socket.poll() builds one of these
        from .polling import Poller  # polling builds on this module

        return Poller


class Context(zmq.Context):
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
        hub = current_hub()
        if (
            hub is None  # a thread without greenthreads: block as pyzmq does
            or getcurrent() is hub.greenlet  # nothing can wait in the hub
            or self._term_here
            or sys.is_finalizing()
        ):
            super().term()
            return
        # libzmq tells each socket through its mailbox: their fds get an edge, and
        # greenthreads waiting on them retry and see ETERM while this one waits.
        tpool.execute(zmq.Context.term, self)

    def __del__(self) -> None:
        # Collected at any point of any greenthread: never switch away from there.
        self._term_here = True
        super().__del__()
