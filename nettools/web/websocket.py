"""Websockets (RFC 6455) for WSGI apps, on green sockets.

Framing, the opening handshake, extension negotiation (permessage-deflate),
size limits and close codes all come from the Sans-I/O layer of the
``websockets`` library (``websockets.server.ServerProtocol``); this module only
moves bytes between it and a green socket, and gives the handler an
eventlet-style blocking API::

    from nettools.web import websocket

    @websocket.WebSocketWSGI
    def echo(ws):
        for message in ws:          # str for text, bytes for binary
            ws.send(message)

    @websocket.WebSocketWSGI(max_message_size=64 << 10, origins=["https://example.com"])
    def chat(ws):
        ...

The decorated object is a WSGI app.  It needs a server that lets it take the
connection over (``environ['nettools.takeover']``), as ``nettools.web.wsgi``
does; the server then writes no HTTP response of its own and closes the socket
when the app returns.

One greenthread -- normally the handler, through ``wait()`` -- reads from the
socket; any number may ``send`` (sends are serialized by a lock).  A keepalive
greenthread pings the peer every ``ping_interval`` seconds and fails the
connection with 1011 if no pong arrives within ``ping_timeout``.  A peer that
goes away without a close frame just makes ``wait()`` return ``None``.

For a graceful stop of the server a connection counts as idle only while
``wait()`` waits with no part of a message received: a stop then closes it at
once with code 1001 (going away) -- ``wait()`` returns ``None`` when the peer
answers, or when it has not within ``close_timeout`` -- while one in the middle
of a message, or whose handler is still working on one, is left to finish it
and is closed the same way when it next waits.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket as _stdlib_socket
import ssl as _stdlib_ssl
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from greenlet import GreenletExit
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import CloseCode, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol

from ..green import socket as _green_socket
from ..kernel.greenthread import GreenThread, kill, sleep, spawn
from ..kernel.hub import get_hub
from ..kernel.sync import Event
from ..kernel.timeout import Timeout
from .wsgi import plain_response

__all__ = ["WebSocketWSGI", "WebSocket", "WebSocketClosed"]

log = logging.getLogger("nettools.websocket")
#: The protocol library's own messages ("connection open", "connection closed").
_proto_log = logging.getLogger("nettools.websocket.protocol")

_RECV_SIZE = 65536
# The C methods: a green socket is non-blocking at the OS level, so they answer EAGAIN.
_c_recv = _stdlib_socket._socket.socket.recv
_c_send = _stdlib_socket._socket.socket.send
_MSG_DONTWAIT = getattr(_stdlib_socket, "MSG_DONTWAIT", 0)
#: Reads the keepalive may do when the handler is not reading (64 KiB each).
_KEEPALIVE_MAX_READS = 16
_CLOSED = State.CLOSED
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG

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
    (the negotiated subprotocol or None), ``socket``.
    """

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
        self._send_waiters: deque[Any] = deque()
        self._messages: deque[str | bytes] = deque()  # complete, not yet returned by wait()
        self._fragments: list[bytes] = []  # the message being received, if fragmented
        self._fragment_text = False
        self._reading = False  # someone is inside a socket read
        self._dead = False  # the transport failed (reset, EOF, send error)
        self._pong: tuple[bytes, Event] | None = None  # the ping the keepalive waits on
        self._keepalive: GreenThread | None = None
        self._cutoff: Any = None  # the timer that ends a closing handshake left unanswered
        self._tls = isinstance(sock, _stdlib_ssl.SSLSocket)
        # Plain green sockets are read with the C recv and the hub directly.
        self._fast = isinstance(sock, _green_socket.socket) and not self._tls
        self._hub = get_hub()
        self._fd = sock.fileno()

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
        messages = self._messages
        while not messages:
            if self._dead or self._proto.state is not OPEN:
                return None
            if self._reading:
                raise RuntimeError("another greenthread is already waiting on this websocket")
            self._read()
        return messages.popleft()

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
        if isinstance(message, str):
            data: Any = message.encode()
            op = proto.send_text
        else:
            data = message
            op = proto.send_binary
        if self._sending or self._send_waiters:
            self._lock_send()
        else:
            self._sending = True
        try:
            if self._dead or proto.state is not OPEN:
                raise self._closed_error()
            op(data)
            self._flush()
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
                try:
                    data = _c_recv(sock, _RECV_SIZE)
                except BlockingIOError:
                    self._mark_idle(not (self._fragments or self._proto.reader.buffer))
                    wait_read, fd = self._hub.wait_read, self._fd
                    while True:
                        wait_read(fd)  # we just got EAGAIN, as the hub wants
                        try:
                            data = _c_recv(sock, _RECV_SIZE)
                            break
                        except BlockingIOError:
                            pass
            else:
                self._mark_idle(not (self._fragments or self._proto.reader.buffer))
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
            proto.receive_data(data)
        else:
            self._dead = True
            proto.receive_eof()
        events = proto.events_received()
        if events:
            self._handle_frames(events)
        if proto.writes:  # pongs, the close echo, EOF after a close or failure
            self._lock_send()
            try:
                self._flush_quietly()
            finally:
                self._unlock_send()

    def _handle_frames(self, frames: list[Any]) -> None:
        messages = self._messages
        for frame in frames:
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                if frame.fin:
                    if opcode is _TEXT:
                        text = self._decode(frame.data)
                        if text is None:
                            return
                        messages.append(text)
                    else:
                        messages.append(bytes(frame.data))
                else:
                    self._fragments = [frame.data]
                    self._fragment_text = opcode is _TEXT
            elif opcode is _CONT:
                self._fragments.append(frame.data)
                if frame.fin:
                    data = b"".join(self._fragments)
                    self._fragments = []
                    if self._fragment_text:
                        text = self._decode(data)
                        if text is None:
                            return
                        messages.append(text)
                    else:
                        messages.append(data)
            elif opcode is _PONG:
                pong = self._pong
                if pong is not None and frame.data == pong[0]:
                    self._pong = None
                    pong[1].send(True)
            # PING is answered by the protocol; CLOSE is reflected in its state.

    def _decode(self, data: bytes) -> str | None:
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            self._fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {exc.start}")
            return None

    # --------------------------------------------------------------- sending

    def _flush(self) -> None:
        """Write what the protocol has queued; the caller holds the send lock."""
        chunks = self._proto.data_to_send()
        sock = self.socket
        try:
            for chunk in chunks:
                if chunk:
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
                else:  # SEND_EOF: the protocol is done with this direction
                    self._shutdown(_stdlib_socket.SHUT_WR)
        except (OSError, ValueError) as exc:
            log.debug("websocket %s: write failed: %s", self.path, exc)
            self._dead = True
            raise self._closed_error() from exc

    def _lock_send(self, timeout: float | None = None) -> bool:
        """Take the send lock, waiting in line; False if ``timeout`` ran out first."""
        if not self._sending and not self._send_waiters:
            self._sending = True
            return True
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
            self._keepalive = spawn(self._keepalive_loop)

    def _keepalive_loop(self) -> None:
        interval, timeout = self.ping_interval or 0, self.ping_timeout
        try:
            while True:
                sleep(interval)
                if self.closed:
                    return
                payload = os.urandom(4)
                pong = Event()
                self._pong = (payload, pong)
                if timeout is None:
                    self.ping(payload)
                    continue
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
        except (GreenletExit, WebSocketClosed):
            pass

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
        """Read until the closing handshake and the TCP close are done, or time runs out."""
        with Timeout(self.close_timeout, False):
            while not self._dead and self._proto.state is not _CLOSED:
                if self._reading:
                    return  # another greenthread reads; it will see the end
                self._read()

    def _end(self) -> None:
        """After the handler: stop pinging, close politely if still open, drain."""
        if self._keepalive is not None:
            kill(self._keepalive)
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
        if self._keepalive is not None:
            kill(self._keepalive)
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


class WebSocketWSGI:
    """Wrap ``handler(ws)`` as a WSGI app that accepts websocket connections.

    Use it as a decorator, bare or with options (as eventlet's)::

        @WebSocketWSGI
        def handler(ws): ...

        @WebSocketWSGI(max_message_size=1 << 16, ping_interval=None)
        def handler(ws): ...

    Options:

    * ``max_message_size``: largest incoming message in bytes, after
      decompression; a larger one fails the connection with 1009.  None: no
      limit.  ``max_frame_length`` (eventlet's name) is accepted as an alias.
    * ``ping_interval``/``ping_timeout``: ping every so many seconds; fail with
      1011 if the pong takes longer than the timeout.  None disables either.
    * ``origins``: accepted values of the ``Origin`` header (strings or compiled
      regular expressions; include None to accept clients that send none);
      others get 403 before the handshake.  None (default): any origin.
    * ``compression``: offer permessage-deflate (default True).
    * ``subprotocols``: subprotocols to pick from, in order of preference.
    * ``close_timeout``: how long to wait for the peer during the closing handshake.

    Requests that are not websocket upgrades get 400, as in eventlet.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        max_message_size: int | None = 1 << 20,
        max_frame_length: int | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        origins: Sequence[Any] | None = None,
        compression: bool = True,
        subprotocols: Sequence[str] | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        if max_frame_length is not None:
            max_message_size = max_frame_length
        self.handler = handler
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.origins = None if origins is None else list(origins)
        self.compression = compression
        self.subprotocols = None if subprotocols is None else list(subprotocols)
        self.close_timeout = close_timeout
        if handler is not None:
            functools.update_wrapper(self, handler)  # type: ignore[arg-type]

    def _options(self) -> dict[str, Any]:
        return {
            "max_message_size": self.max_message_size,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "origins": self.origins,
            "compression": self.compression,
            "subprotocols": self.subprotocols,
            "close_timeout": self.close_timeout,
        }

    def __call__(self, *args: Any) -> Any:
        """``app(environ, start_response)``; or, without a handler yet, ``deco(handler)``."""
        if len(args) == 1 and self.handler is None:
            return WebSocketWSGI(args[0], **self._options())
        if self.handler is None:
            raise TypeError("WebSocketWSGI has no handler: use it as a decorator first")
        environ, start_response = args
        return self._serve(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        upgrade = environ.get("HTTP_UPGRADE", "")
        if "websocket" not in (token.strip().lower() for token in upgrade.split(",")):
            return plain_response(
                start_response, "400 Bad Request", "Expected a websocket upgrade.\n"
            )
        if environ.get("REQUEST_METHOD") != "GET":
            return plain_response(
                start_response, "405 Method Not Allowed", "Use GET.\n", [("Allow", "GET")]
            )
        if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
            return plain_response(
                start_response, "400 Bad Request", "A websocket upgrade needs HTTP/1.1.\n"
            )

        proto = ServerProtocol(
            origins=self.origins,
            extensions=enable_server_permessage_deflate(None) if self.compression else None,
            subprotocols=self.subprotocols,
            max_size=self.max_message_size,
            logger=_proto_log,
        )
        response = proto.accept(Request(_request_path(environ), _request_headers(environ)))
        if response.status_code != 101:
            # A refusal (bad key, origin, subprotocol) is an ordinary HTTP response.
            headers = [
                (name, value)
                for name, value in response.headers.raw_items()
                if name.lower() not in ("connection", "date")  # the server's business
            ]
            start_response(f"{response.status_code} {response.reason_phrase}", headers)
            return [response.body]

        takeover = environ.get("nettools.takeover")
        if takeover is None:
            raise RuntimeError(
                "this WSGI server cannot hand over the connection for a websocket "
                "(no environ['nettools.takeover']); serve the app with nettools.web.wsgi"
            )
        sock, leftover = takeover()
        # Liveness is the keepalive's job now, not a read timeout's.
        sock.settimeout(None)
        proto.send_response(response)
        # The request reached us through the WSGI server, not through the
        # protocol's own HTTP parser, which still waits for one: restart it now
        # that the state is OPEN, where it parses frames.
        proto.parser = proto.parse()
        next(proto.parser)
        ws = WebSocket(
            sock,
            proto,
            environ,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
        )
        try:
            ws._flush()  # nobody else can send yet
        except WebSocketClosed:
            return []
        on_stop = environ.get("nettools.on_stop")
        if on_stop is not None:
            on_stop(ws._going_away)
        try:
            self._run(ws, leftover)
        finally:
            if on_stop is not None:
                on_stop(None)
            ws._cancel_cutoff()
        return []

    def _run(self, ws: WebSocket, leftover: bytes) -> None:
        assert self.handler is not None
        try:
            ws._start(leftover)
            self.handler(ws)
        except WebSocketClosed:
            # The peer went away while the handler sent: an ordinary end.
            log.debug("websocket %s: peer gone", ws.path)
            ws._abort(CloseCode.NORMAL_CLOSURE, "")
        except Exception:
            log.exception("websocket handler %r failed on %s", self.handler, ws.path)
            ws._abort(CloseCode.INTERNAL_ERROR, "")
        except BaseException:
            # Killed (say, by a server stop running out of patience): say goodbye.
            ws._abort(CloseCode.GOING_AWAY, "")
            raise
        else:
            ws._end()

    def __repr__(self) -> str:
        return f"<WebSocketWSGI handler={self.handler!r}>"


def _request_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path or "/"


def _request_headers(environ: dict[str, Any]) -> Headers:
    """The request headers, back from WSGI's ``HTTP_*`` keys (names are case-insensitive)."""
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-")] = value
    return headers
