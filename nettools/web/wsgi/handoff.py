"""The raw connection, where libraries written for gunicorn and Werkzeug look for it.

WSGI has no standard way to hand a connection over to another protocol, so
each server has its own: gunicorn puts the client socket in
``environ['gunicorn.socket']``, Werkzeug's development server in
``environ['werkzeug.socket']``.  simple-websocket (Flask-Sock's websocket
layer; python-engineio's too, where ``web.engineio_ws`` does not serve it)
takes the socket from there, writes the
``101 Switching Protocols`` answer itself, reads frames in a thread of its own
(a greenthread under ``monkey_patch``) and, once the websocket has ended, ends
the request by raising ``StopIteration`` (gunicorn) or ``ConnectionError``
(Werkzeug) out of the application.

``HandoffSocket`` is the object nettools puts under both keys.  Until the
application reads or writes through it, it is only a view of the socket (its
address, options, file descriptor); the first read or write takes the
connection over (as ``environ['nettools.takeover']`` does):

* the server writes no response of its own, reads no further request (the
  connection leaves keep-alive handling) and drops the read timeout of its
  HTTP handling -- liveness is the new protocol's business;
* bytes the server had already received beyond the request come first;
* ``send`` sends everything, as on a blocking socket (simple-websocket ignores
  short sends), and sends from several greenthreads never interleave;
* the connection still counts against the server's connection limit, and is
  idle for a graceful stop while a read waits: a stop then closes a websocket
  with close code 1001 (going away) and gives the peer ``CLOSE_TIMEOUT``
  seconds to answer before shutting the socket down; any other protocol is
  shut down at once;
* the ``StopIteration`` or ``OSError`` that ends such a request is no error
  (nothing is logged).

Code written for threads needs ``nettools.monkey_patch()`` (``nettools serve``
patches unless told ``--no-patch``): without it its threads and events would
block the server's one OS thread, so the takeover is refused with a message
that says so.
"""

from __future__ import annotations

import socket as _stdlib_socket
from collections.abc import Callable
from typing import Any

from websockets.frames import Close, CloseCode, Frame, Opcode

from ...kernel.sync import Event, Lock
from ...net import shutdown_quietly
from ...patcher import is_monkey_patched

__all__ = ["HandoffSocket", "HandoffError", "CLOSE_TIMEOUT", "HANDOFF_KEYS"]

#: The environ keys that hold the connection: gunicorn's, then Werkzeug's.
HANDOFF_KEYS = ("gunicorn.socket", "werkzeug.socket")
#: How long a graceful stop waits for the peer to answer its close frame.
CLOSE_TIMEOUT = 5.0
#: A server's close frame (unmasked) saying 1001, going away.
GOING_AWAY = Frame(Opcode.CLOSE, Close(CloseCode.GOING_AWAY, "").serialize()).serialize(
    mask=False
)


class HandoffError(RuntimeError):
    """The connection cannot be handed over (the message says why and what to do)."""


class HandoffSocket:
    """The client connection of ``conn`` (a ``WSGIConnection``), for its application
    to take over; see the module docstring."""

    __slots__ = (
        "_conn", "_server", "_sock", "_leftover", "_taken", "_lock", "_websocket",
        "_sent", "_goodbye", "_finished", "_io_refs", "_closed",
    )  # fmt: skip

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._sock = conn.sock
        self._server = conn.net_server
        self._leftover = b""
        self._taken = False
        self._lock: Lock | None = None
        self._websocket = False
        self._sent = False  # the new protocol's first bytes (the 101) went out
        self._goodbye = False  # a graceful stop is closing it
        self._finished: Event | None = None
        self._io_refs = 0
        self._closed = False

    # ------------------------------------------------------------- takeover

    def _take(self) -> None:
        if not is_monkey_patched("thread"):
            raise HandoffError(
                "the application took the raw connection (environ['gunicorn.socket']), "
                "which is for code written for threads: call nettools.monkey_patch() first "
                "(nettools serve does, unless --no-patch), or use environ['nettools.takeover']"
            )
        conn = self._conn
        # A websocket upgrade: a graceful stop may say goodbye in the new protocol.
        # (Asked first: the takeover lets go of the request's headers.)
        self._websocket = _asks_websocket(conn.req.headers)
        sock, self._leftover = conn.takeover()
        self._taken = True
        self._lock = Lock()
        self._finished = Event()
        sock.settimeout(None)
        self._server.on_stop(sock, self._say_goodbye)

    def _say_goodbye(self) -> None:
        """A graceful stop found the connection idle: close it, the websocket way if it is one."""
        self._goodbye = True
        sock = self._sock
        if not (self._websocket and self._sent):
            shutdown_quietly(sock)
            return
        with self._lock:  # a send in progress goes out whole first
            try:
                sock.sendall(GOING_AWAY)
            except OSError:
                return
        if self._finished.wait(CLOSE_TIMEOUT) is None:
            shutdown_quietly(sock)

    # ------------------------------------------------------------- reading

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._taken:
            self._take()
        if self._leftover:
            data, self._leftover = self._leftover[:bufsize], self._leftover[bufsize:]
            return data
        data = self._idle_read(self._sock.recv, bufsize, flags)
        if not data:
            self._ended()
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if not self._taken:
            self._take()
        if self._leftover:
            with memoryview(buffer) as view:
                n = min(len(view), nbytes or len(view), len(self._leftover))
                view[:n] = self._leftover[:n]
            self._leftover = self._leftover[n:]
            return n
        n = self._idle_read(self._sock.recv_into, buffer, nbytes, flags)
        if not n:
            self._ended()
        return n

    def _idle_read(self, read: Callable[..., Any], *args: Any) -> Any:
        """A read that leaves the connection idle for a graceful stop while it waits."""
        if self._goodbye:
            return read(*args)
        sock = self._sock
        set_idle = self._server.set_idle
        set_idle(sock, True)
        try:
            return read(*args)
        finally:
            if not self._goodbye:
                set_idle(sock, False)

    # ------------------------------------------------------------- writing

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self._taken:
            self._take()
        with self._lock:
            if self._goodbye and self._sent:
                return  # after our close frame the protocol allows nothing more
            self._sock.sendall(data, flags)
            self._sent = True

    def send(self, data: Any, flags: int = 0) -> int:
        """Send all of ``data`` (a blocking socket's ``send`` does too); its length."""
        self.sendall(data, flags)
        return len(data)

    # ------------------------------------------------------------- the rest

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        """A file on this object (so reads see the leftover bytes first)."""
        return _stdlib_socket.socket.makefile(self, mode, buffering, **kwargs)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._sock.close()

    def _ended(self) -> None:
        """The peer closed, or the application did: a goodbye need wait no longer."""
        if self._finished is not None and not self._finished.ready():
            self._finished.send(None)

    def close(self) -> None:
        """Close the connection (the server would close it anyway when the request ends)."""
        self._closed = True
        self._ended()
        if self._io_refs <= 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # fileno, getpeername, setsockopt, settimeout, shutdown, ...: the socket's own.
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        state = "taken over" if self._taken else "available"
        return f"<HandoffSocket {state} {self._sock!r}>"


def _asks_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """True if request ``headers`` ask to upgrade to a websocket."""
    return any(
        name.lower() == b"upgrade" and b"websocket" in value.lower() for name, value in headers
    )
