"""One open websocket: the blocking API a handler sees, on a green socket.

``WebSocket`` moves bytes between the socket and the protocol object
(``websockets.server.ServerProtocol``, which does the framing), sends under a
lock any number of greenthreads may queue on, pings the peer from a keepalive
greenthread, and counts as idle for a graceful stop only while ``wait()`` waits
between messages.  ``serving.py`` runs a handler on one.
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import socket as _stdlib_socket
import ssl as _stdlib_ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from greenlet import GreenletExit
from websockets.frames import CloseCode
from websockets.protocol import OPEN, Side, State
from websockets.server import ServerProtocol

from ...green import socket as green_socket
from ...green.socket import nothing_new
from ...kernel.greenthread import GreenThread, kill, spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event
from ...kernel.timeout import Timeout
from .framing import frame_header, receive
from .inbox import Inbox

__all__ = ["WebSocket", "WebSocketClosed", "Handler"]

log = logging.getLogger("nettools.websocket")

_RECV_SIZE = 65536
# The C methods: a green socket is non-blocking at the OS level, so they answer EAGAIN.
_c_recv = _socket.socket.recv
_c_send = _socket.socket.send
_MSG_DONTWAIT = getattr(_stdlib_socket, "MSG_DONTWAIT", 0)
#: Reads the keepalive may do when the handler is not reading (64 KiB each).
_KEEPALIVE_MAX_READS = 16
_CLOSED = State.CLOSED
_SERVER = Side.SERVER

Handler = Callable[["WebSocket"], Any]


class WebSocketClosed(ConnectionError):
    """Raised by ``send`` and ``ping`` once the connection is closed or the peer gone.

    ``code`` and ``reason`` are what the peer sent in its close frame, or 1006
    and ``""`` if the connection ended without one.  When it escapes the handler
    the connection simply ends: nothing is logged.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(errno.EPIPE, f"websocket is closed (code {code}) {reason}".rstrip())
        self.code = code
        self.reason = reason


class WebSocket:
    """One open websocket connection, as the handler sees it.

    ``wait()`` returns the next message (``str`` for text, ``bytes`` for
    binary) or ``None`` once the connection is closed; ``send`` sends one;
    ``close`` starts the closing handshake.  Iterating yields messages until
    the close.  Attributes: ``path``, ``environ``, ``origin``, ``protocol``
    (the negotiated subprotocol or None), ``socket``.  A handler may set
    attributes of its own on it.
    """

    # Slots keep an idle connection small; __dict__ for the handler's own attributes.
    __slots__ = (
        "socket", "environ", "path", "origin", "protocol", "ping_interval", "ping_timeout",
        "close_timeout", "_proto", "_set_idle_cb", "_idle", "_sending", "_send_waiters",
        "_inbox", "_reading", "_dead", "_ping_timer", "_keepalive", "_cutoff", "_tls",
        "_fast", "_hub", "_fd", "_drained", "__dict__", "__weakref__",
    )  # fmt: skip

    def __init__(
        self,
        sock: Any,
        proto: ServerProtocol,
        environ: dict[str, Any],
        *,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.socket = sock
        self.environ = environ
        self.path: str = environ.get("PATH_INFO", "")
        self.origin: str | None = proto.origin
        self.protocol: str | None = proto.subprotocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._proto = proto
        self._set_idle_cb: Callable[[bool], Any] | None = environ.get("nettools.set_idle")
        self._idle = False  # as last told to the server
        # The send lock: a flag while nobody contends (the common case), else a
        # FIFO of parked greenthreads to which the lock is handed over in turn.
        self._sending = False
        self._send_waiters: deque[Any] | None = None  # made on the first contention
        self._inbox = Inbox()  # what arrived: whole messages, a fragmented one, the pong
        self._reading = False  # someone is inside a socket read
        self._dead = False  # the transport failed (reset, EOF, send error)
        #: The ping's timer between pings; the greenthread of the exchange in flight.
        self._ping_timer: Any = None
        self._keepalive: GreenThread | None = None
        self._cutoff: Any = None  # the timer that ends a closing handshake left unanswered
        self._tls = isinstance(sock, _stdlib_ssl.SSLSocket)
        # Plain green sockets are read with the C recv and the hub directly.
        self._fast = isinstance(sock, green_socket.socket) and not self._tls
        self._hub = get_hub()
        self._fd = sock.fileno()
        self._drained = False  # the last fast-path read emptied the socket

    # ------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once no more messages can arrive (closing handshake begun or transport gone)."""
        return self._dead or self._proto.state is not OPEN

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame; 1006 if it left without one; None while open."""
        rcvd = self._proto.close_rcvd
        if rcvd is not None:
            return rcvd.code
        if self._dead or self._proto.state is _CLOSED:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> str | None:
        """The reason of the peer's close frame (``""`` if none); None while open."""
        rcvd = self._proto.close_rcvd
        if rcvd is not None:
            return rcvd.reason
        return "" if self.close_code is not None else None

    def wait(self) -> str | bytes | None:
        """The next message, waiting for it; ``None`` once the connection is closed."""
        inbox = self._inbox
        while not inbox.messages:
            if self._dead or self._proto.state is not OPEN:
                return None
            if self._reading:
                raise RuntimeError("another greenthread is already waiting on this websocket")
            self._read()
        messages = inbox.messages
        message = messages.popleft()
        if not messages:
            inbox.messages = ()
        return message

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            message = self.wait()
            if message is None:
                return
            yield message

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: text for ``str``, binary for anything bytes-like.

        Raises ``WebSocketClosed`` if the connection is closed or the peer is gone.
        """
        proto = self._proto
        text = isinstance(message, str)
        data: Any = message.encode() if text else message  # type: ignore[union-attr]
        if self._sending or self._send_waiters:
            self._lock_send()
        else:
            self._sending = True
        try:
            if self._dead or proto.state is not OPEN:
                raise self._closed_error()
            if proto.extensions or proto.expect_continuation_frame or proto.writes or \
                    proto.side is not _SERVER:  # fmt: skip
                (proto.send_text if text else proto.send_binary)(data)
                self._flush()
            else:  # one plain frame: what the protocol would make, without its detours
                if type(data) is not bytes:
                    data = bytes(data)
                self._write(frame_header(text, len(data)) + data)
        finally:
            if self._send_waiters:
                self._unlock_send()
            else:
                self._sending = False

    def ping(self, data: bytes = b"") -> None:
        """Send a ping frame (the peer's pong is consumed silently)."""
        self._lock_send()
        try:
            if self._dead or self._proto.state is not OPEN:
                raise self._closed_error()
            self._proto.send_ping(data)
            self._flush()
        finally:
            self._unlock_send()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason``.

        If no other greenthread is reading, wait (up to ``close_timeout``) for
        the peer's answer.  Does nothing if the connection is already closed.
        """
        self._lock_send()
        try:
            if self._dead or self._proto.state is not OPEN:
                return
            self._proto.send_close(code, reason)
            self._flush_quietly()
        finally:
            self._unlock_send()
        if not self._reading:
            self._finish_closing()

    def abort(self) -> None:
        """End the connection at once, without a closing handshake: for a peer
        that does not read, to which no close frame can pass.  A greenthread in
        ``wait()`` gets ``None``; one stuck in ``send`` gets ``WebSocketClosed``."""
        self._shutdown(_stdlib_socket.SHUT_RDWR)

    # ------------------------------------------------------------- receiving

    def _read(self) -> None:
        """Read once from the socket, waiting if nothing is there, and process it.

        While it waits between messages the connection counts as idle for a
        graceful stop; once anything arrives it is busy until the next wait.
        """
        sock = self.socket
        self._reading = True
        try:
            if self._fast:
                # The green socket's own recv, minus its wrapper layers; and it
                # tells us whether we are about to wait, which is when we are idle.
                # After a short read emptied the socket, data since has raised an
                # edge the hub recorded: with none recorded a read now could only
                # fail with EAGAIN, which costs more than waiting first.
                hub, fd = self._hub, self._fd
                if self._drained and nothing_new(hub.fds.get(fd)):
                    data = None
                else:
                    data = _recv_now(sock)
                if data is None:
                    # Parked outside the except clause: an idle connection keeps
                    # no exception and traceback alive.
                    self._mark_idle(not (self._inbox.partial() or self._proto.reader.buffer))
                    while data is None:
                        hub.wait_read(fd)  # after EAGAIN or an emptying read, as it wants
                        data = _recv_now(sock)
                self._drained = 0 < len(data) < _RECV_SIZE
            else:
                self._mark_idle(not (self._inbox.partial() or self._proto.reader.buffer))
                data = sock.recv(_RECV_SIZE)
        except OSError as exc:  # reset, closed under us (IOClosed): the peer is gone
            log.debug("websocket %s: read failed: %s", self.path, exc)
            data = b""
        except ValueError:  # a TLS socket already shut down by a failure
            data = b""
        finally:
            self._reading = False
        if self._idle:
            self._mark_idle(False)
        self._received(data)

    def _try_read(self) -> bool | None:
        """Read what is there without waiting: True if something came, False if
        nothing was there, None if the read found the end of the connection."""
        self._reading = True
        self._drained = False  # not known after this read: the next one tries first
        try:
            if self._tls:
                data = _stdlib_ssl.SSLSocket.read(self.socket, _RECV_SIZE)
            else:
                data = self.socket.recv(_RECV_SIZE, _MSG_DONTWAIT)
        except (BlockingIOError, _stdlib_ssl.SSLWantReadError, _stdlib_ssl.SSLWantWriteError):
            return False
        except (OSError, ValueError):
            data = b""
        finally:
            self._reading = False
        self._received(data)
        return bool(data) or None

    def _received(self, data: bytes) -> None:
        proto = self._proto
        if data:
            invalid = receive(proto, self._inbox, data)
        else:
            self._dead = True
            proto.receive_eof()
            events = proto.events_received()
            invalid = self._inbox.add(events) if events else None
        if invalid is not None:
            self._fail(CloseCode.INVALID_DATA, invalid)
        if proto.writes:  # pongs, the close echo, EOF after a close or failure
            self._lock_send()
            try:
                self._flush_quietly()
            finally:
                self._unlock_send()

    # --------------------------------------------------------------- sending

    def _flush(self) -> None:
        """Write what the protocol has queued; the caller holds the send lock."""
        for chunk in self._proto.data_to_send():
            if chunk:
                self._write(chunk)
            else:  # SEND_EOF: the protocol is done with this direction
                self._shutdown(_stdlib_socket.SHUT_WR)

    def _write(self, chunk: bytes) -> None:
        """Write ``chunk`` whole; the caller holds the send lock."""
        sock = self.socket
        try:
            if self._fast:
                # The C send first: the green sendall's checks only on a short write.
                try:
                    sent = _c_send(sock, chunk)
                except BlockingIOError:
                    sent = 0
                if sent < len(chunk):
                    sock.sendall(memoryview(chunk)[sent:])
            else:
                sock.sendall(chunk)
        except (OSError, ValueError) as exc:
            log.debug("websocket %s: write failed: %s", self.path, exc)
            self._dead = True
            raise self._closed_error() from exc

    def _lock_send(self, timeout: float | None = None) -> bool:
        """Take the send lock, waiting in line; False if ``timeout`` ran out first."""
        if not self._sending and not self._send_waiters:
            self._sending = True
            return True
        if self._send_waiters is None:
            self._send_waiters = deque()
        return self._hub.park(self._send_waiters, timeout, False) is True

    def _unlock_send(self) -> None:
        if self._send_waiters:
            self._hub.run_callback(self._hand_over)  # it stays taken until then
        else:
            self._sending = False

    def _hand_over(self) -> None:
        # On the hub: pop and switch in one step, as hub.park requires; a waiter
        # that left meanwhile (timeout, kill) has removed itself already.
        if self._send_waiters:
            self._send_waiters.popleft().switch(True)
        else:
            self._sending = False

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except WebSocketClosed:
            pass

    def _shutdown(self, how: int) -> None:
        # The plain socket's shutdown even under TLS: SSLSocket.shutdown drops the
        # TLS state, which would turn the reader's next read into a ValueError.
        try:
            _stdlib_socket.socket.shutdown(self.socket, how)
        except OSError:
            pass  # already reset or not connected: nothing left to tell

    def _closed_error(self) -> WebSocketClosed:
        return WebSocketClosed(
            self.close_code or CloseCode.ABNORMAL_CLOSURE, self.close_reason or ""
        )

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: close frame with ``code``, then the TCP connection."""
        # A sender may sit in sendall() towards a peer that stopped reading: then
        # skip the close frame rather than queue behind it forever.
        if self._lock_send(self.close_timeout):
            try:
                if not self._dead and self._proto.state is OPEN:
                    self._proto.fail(code, reason)
                    self._flush_quietly()
            finally:
                self._unlock_send()
        # Wake a reader (and a stuck sender) parked on a peer that may never answer.
        self._shutdown(_stdlib_socket.SHUT_RDWR)

    # ------------------------------------------------------------- lifecycle

    def _start(self, leftover: bytes) -> None:
        if leftover:
            self._received(leftover)
        if self.ping_interval and not self.closed:
            self._ping_timer = self._hub.schedule(self.ping_interval, self._ping_due)

    # The keepalive: between pings only a hub timer, so that an idle connection
    # keeps one parked greenthread (its handler's), not two; each ping and its
    # pong run in a greenthread of their own, which ends with the exchange.

    def _ping_due(self) -> None:
        self._ping_timer = None
        if not self.closed:
            self._keepalive = spawn(self._ping_exchange)

    def _ping_exchange(self) -> None:
        """One ping and its pong; then the next ping's timer, unless the peer is gone."""
        timeout = self.ping_timeout
        try:
            payload = os.urandom(4)
            pong = Event()
            self._inbox.pong = (payload, pong)
            if timeout is None:
                self.ping(payload)
            else:
                try:
                    with Timeout(timeout):
                        self.ping(payload)
                except Timeout:
                    # Stuck behind a send the peer does not take in: it is as good
                    # as gone, and a frame may be half written, so no close frame.
                    log.info("websocket %s: peer takes no data; dropping it", self.path)
                    self._dead = True
                    self._shutdown(_stdlib_socket.SHUT_RDWR)
                    return
                if pong.wait(timeout) is None and not self._pong_seen_by_pumping(pong):
                    if not self.closed:
                        log.info("websocket %s: no pong within %gs; closing", self.path, timeout)
                        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    return
            if not self.closed:
                self._ping_timer = self._hub.schedule(self.ping_interval, self._ping_due)
        except (GreenletExit, WebSocketClosed):
            pass
        finally:
            self._keepalive = None

    def _stop_keepalive(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._keepalive is not None:
            kill(self._keepalive)

    def _pong_seen_by_pumping(self, pong: Event) -> bool:
        """While the handler is busy elsewhere nobody reads: read what arrived
        ourselves (messages queue up for ``wait``) and look for the pong.

        A peer still streaming after a bounded number of reads is alive anyway.
        """
        if self._reading:
            return False  # the handler reads and saw no pong: the peer is silent
        for _ in range(_KEEPALIVE_MAX_READS):
            got = self._try_read()
            if pong.ready():
                return True
            if not got:
                return got is None  # nothing there: no pong; None: closed anyway
        return True

    def _finish_closing(self) -> None:
        """Read until the closing handshake is done, or time runs out.

        Once the server has sent its end of the connection (after both close
        frames, or on failing it) nothing more is needed from the peer: RFC
        6455 has the server close the TCP connection first, and a client that
        never closes its side must not hold the handler for ``close_timeout``.
        """
        proto = self._proto
        with Timeout(self.close_timeout, False):
            while not self._dead and proto.state is not _CLOSED and not proto.eof_sent:
                if self._reading:
                    return  # another greenthread reads; it will see the end
                self._read()

    def _end(self) -> None:
        """After the handler: stop pinging, close politely if still open, drain."""
        self._stop_keepalive()
        self.close(CloseCode.NORMAL_CLOSURE)
        if not self._reading:
            self._finish_closing()

    def _going_away(self) -> None:
        """The server stops while this connection is idle: close it with 1001.

        Runs in a greenthread of its own while the handler waits in ``wait()``,
        which returns ``None`` once the peer has answered; if it does not
        within ``close_timeout``, the connection is cut.
        """
        if not self._lock_send(self.close_timeout):
            # A sender is stuck towards a peer that does not read: no frame can pass.
            self._shutdown(_stdlib_socket.SHUT_RDWR)
            return
        try:
            if not self._dead and self._proto.state is OPEN:
                self._proto.send_close(CloseCode.GOING_AWAY, "server shutting down")
                self._flush_quietly()
        finally:
            self._unlock_send()
        if not self._dead and self._proto.state is not _CLOSED and self._cutoff is None:
            self._cutoff = self._hub.schedule(
                self.close_timeout, self._shutdown, _stdlib_socket.SHUT_RDWR
            )

    def _cancel_cutoff(self) -> None:
        if self._cutoff is not None:
            self._cutoff.cancel()
            self._cutoff = None

    def _abort(self, code: int, reason: str) -> None:
        """After a failed or killed handler: send a close frame without waiting for answers."""
        self._stop_keepalive()
        if not self._dead and self._proto.state is OPEN:
            with Timeout(1.0, False):
                self._fail(code, reason)

    def _mark_idle(self, idle: bool) -> None:
        if idle is not self._idle and self._set_idle_cb is not None:
            self._idle = idle
            self._set_idle_cb(idle)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<WebSocket {self.path!r} {state}>"


def _recv_now(sock: Any) -> bytes | None:
    """What the socket holds (the C recv, without waiting); None if nothing yet."""
    try:
        return _c_recv(sock, _RECV_SIZE)
    except BlockingIOError:
        return None
