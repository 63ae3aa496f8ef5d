"""HTTP/1.1 connection handling on a sans-I/O request parser (httptools by default).

``HttpConnection`` owns one client socket.  It receives into a buffer shared by
every connection of a server (no greenthread switch can happen between a
``recv_into`` and the parser consuming the bytes, so one buffer serves them
all and an idle connection costs no buffer), feeds the parser, and the
parser's callbacks collect each request into a ``Request``: method, target,
headers as raw ``(name, value)`` byte pairs, and body chunks.  Requests whose
head is complete wait in ``pending`` in arrival order, so pipelined requests
are answered in order; a body is only received when the application reads it
(``read_body``), so memory stays bounded by the receive size whatever the
upload.

Limits (``Limits``) are enforced while parsing: request target (414), header
bytes and count (431), declared or received body size (413).  A request that
does not parse gets 400.  Each of these is queued as a ``ParseError`` behind
the requests that came before it, answered, and the connection is closed.

Timeouts are the socket's own, or on a plain green socket given to the idle
wait itself (no ``Timeout`` object per request): the first request
and any request whose head arrives in pieces must be complete within
``header_timeout`` of its first byte, the empty lines a client may send before
a request line counting as its first bytes (408, then close -- against
slowloris; only empty lines by then: just close), and at most
``max_empty_lines`` of them are taken (400), while each receive of a head begun may
take ``io_timeout`` when that is shorter (408 too, as for a stalled body);
between requests a keep-alive connection may stay idle for
``keepalive_timeout``; once a request is underway each receive or send may
take ``io_timeout``.  A keep-alive connection never changes its socket's
timeout on the fast path.

What a request is (``Request``, ``ParseError``, ``Limits``, the body errors)
lives in ``http_request`` and is exported here too; finding the bytes pipelined
behind a request taken over, in ``pipelined``; how the socket is read while
idle between requests, in ``idle_read`` (``IdleReader``, the base class).
"""

from __future__ import annotations

import socket as _stdlib_socket
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from . import http_request
from .http_request import (
    ChunkReadError,  # noqa: F401 - exported (__all__)
    ChunksCutShort,
    ClientDisconnected,
    HTTPError,
    Limits,
    MalformedChunks,
    ParseError,
    Request,
)
from .idle_read import IdleReader
from .pipelined import pipelined_tail

__all__ = [
    *http_request.__all__,  # exported here too
    "HttpConnection",
    "http_date",
    "DATE",
    "error_response",
    "RECV_SIZE",
]

#: Bytes asked for per receive (and the size of a server's shared receive buffer).
RECV_SIZE = 65536

_HttpParserError = httptools.HttpParserError
_HttpParserUpgrade = httptools.HttpParserUpgrade

# Cached str forms of what the parser reports as bytes or version strings.
_METHODS: dict[bytes, str] = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT")
}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "0.9": "HTTP/0.9"}
# First bytes (either case) of the request headers the HTTP layer itself looks at:
# Content-Length, Expect, Connection and Proxy-Connection.
_SPECIAL_FIRST = frozenset(b"cCeEpP")
# The headers llhttp reads as Connection (it honours the old Proxy-Connection too).
_CONNECTION_NAMES = (b"connection", b"proxy-connection")
#: The bytes of the empty lines the parser skips before a request line.
_CRLF = frozenset(b"\r\n")
#: What a released connection holds in place of its request queue: nothing.
_NO_PENDING: deque = deque(maxlen=0)


class _LimitExceeded(Exception):
    """Raised inside a parser callback to stop parsing; the status is on the connection."""


class _MoreBody:
    """The callbacks of the parser reading a request's further body (see
    ``HttpConnection.expect_another_body``); the connection's own parser takes
    over again at its end."""

    __slots__ = ("conn", "on_body")

    def __init__(self, conn: HttpConnection) -> None:
        self.conn = conn
        self.on_body = conn.on_body

    def on_message_complete(self) -> None:
        conn = self.conn
        conn._feed_data = conn.parser.feed_data
        conn.on_message_complete()


class HttpConnection(IdleReader):
    """Reads requests from one client socket in order; see the module docstring.

    ``next_request()`` returns the next request whose head is complete (or
    None when the connection should close); ``read_body(req)`` receives more
    of its body.  Subclasses answer the requests.
    """

    # Slots: with this many attributes a dict per connection costs ~1.2 KiB more.
    __slots__ = (
        "limits", "_max_url", "_max_hsize", "_max_headers", "_max_body", "_request_timeout",
        "_max_head", "parser", "_feed_data", "_version", "_method", "_keep_alive", "_upgrade",
        "pending", "dead", "_url", "_url_len", "_headers", "_hsize", "_clen", "_expect",
        "_connection", "_asked_keep_alive", "_llhttp", "_in_head", "_parsing", "_limit_status",
        "_completed_in_feed", "_pipelined", "_chunk", "_fresh", "_empty_lines", "ended",
    )  # fmt: skip

    def __init__(
        self,
        sock: Any,
        view: memoryview,
        limits: Limits,
        parser_factory: Callable[[Any], Any] = httptools.HttpRequestParser,
        set_idle: Callable[[Any, bool], None] | None = None,
    ) -> None:
        super().__init__(sock, view, set_idle)
        self.limits = limits
        self._max_url = limits.max_request_line
        self._max_hsize = limits.max_header_size
        self._max_headers = limits.max_headers
        self._max_body = limits.max_body_size
        self._request_timeout = limits.request_timeout
        # Raw bytes a head may take: target, header lines, and their punctuation.
        self._max_head = (
            limits.max_request_line + limits.max_header_size + 4 * limits.max_headers + 1024
        )
        self.parser = parser = parser_factory(self)
        self._feed_data = parser.feed_data
        self._version = parser.get_http_version
        self._method = parser.get_method
        self._keep_alive = parser.should_keep_alive
        self._upgrade = parser.should_upgrade
        #: httptools' own parser, whose rules on_headers_complete relies on.
        self._llhttp = type(parser) is httptools.HttpRequestParser
        #: Requests with a complete head (and ParseErrors), in arrival order.
        self.pending: deque[Request | ParseError] = deque()
        #: The parser is done with this connection (error or upgrade).
        self.dead = False
        # Parser state: the head being collected, the request whose body is arriving.
        self._url: list[bytes] = []
        self._url_len = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._hsize = 0
        self._clen: int | None = None
        self._expect = False
        self._connection = False
        self._asked_keep_alive = False
        self._in_head = False
        self._parsing: Request | None = None
        self._limit_status = 0
        # For takeover after pipelining (see leftover_after).
        self._completed_in_feed = False
        self._pipelined = False
        self._chunk = b""
        self._fresh = True  # no request read yet
        #: Why reading stopped, when not because the client closed: ``idle`` (no
        #: request within the keep-alive timeout), ``slow`` (a head too slow),
        #: ``limit`` (a head too large) or ``error`` (a reset, say).
        self.ended: str | None = None
        self._empty_lines = 0  # received before the request to come

    # ------------------------------------------------------------ callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = []
        self._url_len = 0
        self._headers = []
        self._hsize = 0
        self._clen = None
        self._expect = False
        self._connection = False
        self._asked_keep_alive = False
        if self._completed_in_feed:
            self._pipelined = True

    def on_url(self, part: bytes) -> None:
        self._url.append(part)
        self._url_len += len(part)
        if self._url_len > self._max_url:
            self._limit_status = 414
            raise _LimitExceeded

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        self._hsize += len(name) + len(value)
        if self._hsize > self._max_hsize or len(headers) > self._max_headers:
            self._limit_status = 431
            raise _LimitExceeded
        if name and name[0] in _SPECIAL_FIRST:
            self._special_header(name.lower(), value)

    def _special_header(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            # The parser has already rejected malformed and conflicting values.
            self._clen = int(value)
        elif name == b"expect":
            self._expect = value.strip().lower() == b"100-continue"
        elif name in _CONNECTION_NAMES:
            self._connection = True
            if b"keep-alive" in value.lower():
                self._asked_keep_alive = True

    def on_headers_complete(self) -> None:
        url = self._url
        self._in_head = False
        clen = self._clen
        if clen is not None and self._max_body is not None and clen > self._max_body:
            self._limit_status = 413
            raise _LimitExceeded
        method = self._method()
        keep_alive = self._keep_alive()
        if keep_alive and not self._connection and self._llhttp:
            # Without a Connection header llhttp keeps alive only HTTP/1.1 (of the
            # versions it accepts, 0.9, 1.0, 1.1 and 2.0, the one with major and
            # minor above 0) and upgrades only CONNECT: asking would tell nothing
            # more, and get_http_version formats a new string each time.
            protocol = "HTTP/1.1"
            upgrade = method == b"CONNECT"
        else:
            version = self._version()
            protocol = _PROTOCOLS.get(version) or "HTTP/" + version
            upgrade = self._upgrade()
        req = Request(
            _METHODS.get(method) or method.decode("latin-1"),
            url[0] if len(url) == 1 else b"".join(url),
            protocol,
            self._headers,
            keep_alive,
            upgrade,
            clen,
            self._expect,
        )
        if self._asked_keep_alive:
            req.asked_keep_alive = True
        self._parsing = req
        self.pending.append(req)

    def on_body(self, data: bytes) -> None:
        req = self._parsing
        if req.body is None:
            req.body = deque()
        req.body.append(data)
        req.body_received += len(data)
        if self._max_body is not None and req.body_received > self._max_body:
            self._limit_status = 413
            raise _LimitExceeded

    def on_message_complete(self) -> None:
        self._parsing.body_done = True
        self._parsing = None
        self._completed_in_feed = True

    # ---------------------------------------------------------------- input

    def feed(self, data: Any) -> None:
        """Parse ``data``; parse errors are queued as ``ParseError``."""
        self._completed_in_feed = False
        try:
            self._feed_data(data)
        except _HttpParserUpgrade as exc:
            # The request just completed switches protocols: what follows it is
            # not HTTP, and belongs to whoever takes the connection over.
            self.pending[-1].leftover = bytes(data[exc.args[0] :])
            self.dead = True
        except _HttpParserError as exc:
            if self._parsing is None:
                # In a head: answer it in its turn.  (An error in a body is
                # reported to the body's reader instead: see read_body.)
                status = self._limit_status or 400
                reason = "" if self._limit_status else str(exc)
                self.pending.append(ParseError(status, reason))
            self.dead = True
            self._in_head = False
        if self._pipelined:
            # Rare: a request began after another completed in this very chunk.
            # Keep the chunk (the shared buffer is reused) for leftover_after.
            self._chunk = bytes(data)
            self._pipelined = False

    def _recv(self) -> int:
        """One receive into the shared buffer, then parse it; returns the byte count."""
        view = self.view
        n = self.sock.recv_into(view)
        self._drained = 0 < n < len(view)
        if n:
            self.feed(view[:n])
        return n

    def next_request(self) -> Request | ParseError | None:
        """The next request whose head is complete (or a ``ParseError`` to answer);
        None when the client left, stayed idle too long, or stalled its head
        (then it got a 408 already)."""
        pending = self.pending
        if pending:
            return pending.popleft()
        if self.dead:
            return None
        self._empty_lines = 0
        # The fast path: one receive brings a whole head.
        try:
            # The first request must start within header_timeout of the accept,
            # later ones within keepalive_timeout.
            if self._fresh:
                self._fresh = False
                timeout = self.limits.header_timeout
            else:
                timeout = self.limits.keepalive_timeout
            # wait_for_request, inline: this runs per request.
            n = self._plain_idle_recv(timeout) if self.plain else self._idle_recv(timeout)
            if not n:
                return None  # the client closed, or a graceful stop shut it while idle
            if self._in_head or self.view[0] not in _CRLF or self._take_empty_lines(n):
                self.feed(self.view[:n])
            if pending:
                if self.timeout != self._request_timeout:
                    self.settimeout(self._request_timeout)
                return pending.popleft()
            return self._rest_of_head(n, timeout)
        except TimeoutError:
            self.ended = "idle"
            return None
        except OSError:
            self.ended = "error"  # reset, or closed by a stop
            return None

    def _take_empty_lines(self, n: int) -> bool:
        """Count the empty lines that lead the ``n`` bytes just received (the
        parser skips them); False, with a 400 queued, once there are too many."""
        limit = self.limits.max_empty_lines
        chunk = bytes(self.view[: min(n, 2 * (limit + 1))])
        lead = chunk[: len(chunk) - len(chunk.lstrip(b"\r\n"))]
        self._empty_lines += lead.count(b"\n")
        if self._empty_lines <= limit:
            return True
        self.pending.append(ParseError(400, f"more than {limit} empty lines before a request"))
        self.dead = True
        return False

    def _rest_of_head(
        self, received: int, idle_timeout: float | None
    ) -> Request | ParseError | None:
        """The slow path: a head arriving in pieces, ``received`` bytes of it
        (or of empty lines before it) so far, after a wait of ``idle_timeout``.
        It gets header_timeout in all, counted from its first byte, and a size
        bound: the parser collects a header line whole before reporting it, so
        raw bytes bound an endless line."""
        limits = self.limits
        pending = self.pending
        deadline = None
        if limits.header_timeout is not None:
            deadline = time.monotonic() + limits.header_timeout
        head_bytes = received
        io_timeout = limits.io_timeout
        try:
            while not pending:
                if self.dead:
                    return None
                timeout = idle_timeout  # no header_timeout: as the wait before
                if deadline is not None:
                    timeout = max(deadline - time.monotonic(), 0.001)
                if not self._in_head:
                    # Only empty lines so far: still idle for a graceful stop.
                    n = self.wait_for_request(timeout)
                    if n and self.view[0] in _CRLF and not self._take_empty_lines(n):
                        break
                else:
                    if head_bytes > self._max_head:
                        self.ended = "limit"
                        self.send_quietly(error_response(431, close=True))
                        self.linger_close()
                        return None
                    if io_timeout is not None and (timeout is None or io_timeout < timeout):
                        timeout = io_timeout  # each receive, as eventlet's socket_timeout
                    self.settimeout(timeout)
                    self._drained = False
                    n = self.sock.recv_into(self.view)
                if not n:
                    return None
                head_bytes += n
                self.feed(self.view[:n])
        except TimeoutError:
            self.ended = "slow" if self._in_head else "idle"
            if self._in_head:
                self.send_quietly(error_response(408, close=True))
            return None
        except OSError:
            self.ended = "error"
            return None
        if self.timeout != limits.request_timeout:
            self.settimeout(limits.request_timeout)
        return pending.popleft()

    def read_body(self, req: Request) -> bool:
        """Receive more of ``req``'s body; False when the body is complete.

        Raises ``HTTPError`` (malformed or too large), ``ClientDisconnected``,
        or ``TimeoutError``.
        """
        if req.body_done:
            return False
        if self.dead:
            raise self._malformed_body(req)
        n = self._recv()
        if not n:
            cut = ClientDisconnected if req.content_length is not None else ChunksCutShort
            raise cut("client closed the connection in the middle of the body")
        if self.dead and not req.body_done and req.leftover is None:
            raise self._malformed_body(req)
        return True

    def _malformed_body(self, req: Request) -> HTTPError:
        if self._limit_status:
            return HTTPError(self._limit_status, "malformed request body")
        kind = HTTPError if req.content_length is not None else MalformedChunks
        return kind(400, "malformed request body")

    def expect_another_body(self, req: Request) -> bool:
        """Read a further chunked body as more of ``req``'s, whose own has ended:
        the second phase of a request whose client waits for another ``100
        Continue`` before sending it (OpenStack Swift's multi-phase PUT, as
        eventlet serves it).  False, with nothing changed, unless ``req`` is the
        request being served, chunked, its body read to the end and nothing
        received after it.  The body is parsed as strictly as any, and counts
        towards ``max_body_size`` with the first."""
        if (
            req.content_length is not None
            or not req.body_done
            or req.body
            or self.pending
            or self._in_head
            or self.dead
        ):
            return False
        more = httptools.HttpRequestParser(_MoreBody(self))
        more.feed_data(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        req.body_done = False
        self._parsing = req
        self._feed_data = more.feed_data
        return True

    def discard_body(self, req: Request, limit: int = 1 << 20) -> bool:
        """Read and drop the rest of ``req``'s body (up to ``limit`` bytes);
        True if the connection can go on with the next request."""
        start = req.body_received
        try:
            while not req.body_done:
                if req.body:
                    req.body.clear()
                if req.body_received - start > limit or not self.read_body(req):
                    break
        except (HTTPError, OSError):
            return False
        if req.body:
            req.body.clear()
        return req.body_done

    def leftover_after(self, req: Request) -> bytes:
        """The bytes received beyond ``req`` (for a connection taken over).

        After an upgrade request the parser stopped right behind it, so this is
        exact.  Otherwise it is the unread body already received (for a chunked
        body: decoded), followed by whatever the client pipelined behind the
        request, found again in the last chunk received.
        """
        if req.leftover is not None:
            return req.leftover
        parts = list(req.body or ())
        later = list(self.pending)
        if later or self._in_head or (self._parsing is not None and self._parsing is not req):
            want = [(r.method.encode("latin-1"), r.target) for r in later if type(r) is Request]
            want_error = any(type(r) is ParseError for r in later)
            parts.append(pipelined_tail(self._chunk, want, want_error, self._in_head))
        return b"".join(parts)

    def release(self) -> None:
        """Drop the parser (which refers back to this object) and the request queue
        once the connection is done, or taken over for good."""
        self.parser = self._feed_data = None
        self._version = self._method = self._keep_alive = self._upgrade = None
        self.pending = _NO_PENDING
        self._headers = self._url = None  # refilled by on_message_begin, never after this
        self._chunk = b""

    def send_quietly(self, data: bytes) -> None:
        """Send ``data`` (a final error response); a client already gone is no error."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def linger_close(self, seconds: float = 1.0, limit: int = 256 * 1024) -> None:
        """After a final error response: stop sending, and read (and drop) what the
        client is still sending for a moment, so that closing with unread data
        does not reset the connection before the client has read the response."""
        sock = self.sock
        try:
            # The plain socket's shutdown: SSLSocket.shutdown would drop the TLS state.
            _stdlib_socket.socket.shutdown(sock, _stdlib_socket.SHUT_WR)
            self.settimeout(seconds)
            deadline = time.monotonic() + seconds
            received = 0
            while received < limit and time.monotonic() < deadline:
                n = sock.recv_into(self.view)
                if not n:
                    break
                received += n
        except (OSError, ValueError):
            pass


# ----------------------------------------------------------------- responses

#: ``[the second (a float) the cached header is for, b"Date: ...\r\n"]``: while
#: ``0 <= time.time() - DATE[0] < 1``, ``DATE[1]`` is what ``http_date()`` returns
#: (a response path may test that itself rather than make the call).
DATE: list = [0.0, b""]


def http_date(_time: Callable[[], float] = time.time) -> bytes:
    """``Date: ...\r\n`` for now, formatted once per second."""
    now = _time()
    if not 0.0 <= now - DATE[0] < 1.0:
        second = int(now)
        # formatdate, not strftime: day and month names must not follow the locale.
        DATE[1] = b"Date: %s\r\n" % formatdate(second, usegmt=True).encode()
        DATE[0] = float(second)  # (a float: an int in the test converts each time)
    return DATE[1]


def error_response(
    status: int, reason: str = "", body: str | None = None, close: bool = True
) -> bytes:
    """A complete plain-text error response."""
    phrase = HTTPStatus(status).phrase
    text = (body if body is not None else f"{status} {reason or phrase}\n").encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\n" + ("Connection: close\r\n" if close else "")
    ).encode("latin-1")
    return head + http_date() + b"\r\n" + text
