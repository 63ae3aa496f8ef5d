"""What the HTTP/1.1 server layer reads and raises: ``Request`` (one request
whose head has been read), ``ParseError`` (one that could not be), ``Limits``
(request limits and timeouts) and the errors a body's reader may get.

``nettools.web.http`` (the connection that fills these) exports them too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from http import HTTPStatus

__all__ = [
    "Limits",
    "Request",
    "ParseError",
    "HTTPError",
    "ClientDisconnected",
    "ChunkReadError",
    "MalformedChunks",
    "ChunksCutShort",
]


@dataclass(frozen=True)
class Limits:
    """Request limits and timeouts; each limit has its own error status.

    ``max_body_size`` defaults to 1 GiB: bodies are streamed to the application,
    never buffered, so this only guards against absurd uploads (declared ones
    are refused before the application runs).  ``None`` means no limit.
    ``keepalive_timeout`` ``None`` keeps idle connections forever;
    ``io_timeout`` ``None`` means "same as ``keepalive_timeout``".
    """

    max_request_line: int = 8192  # request target, bytes -> 414
    max_header_size: int = 64 * 1024  # all header names and values, bytes -> 431
    max_headers: int = 100  # -> 431
    max_body_size: int | None = 1 << 30  # -> 413
    header_timeout: float | None = 10.0  # the head of a request, from its first byte -> 408
    max_empty_lines: int = 8  # before a request line (RFC 9112 2.2 says ignore one) -> 400
    keepalive_timeout: float | None = 75.0  # idle between requests -> close
    io_timeout: float | None = None  # one receive or send inside a request

    @property
    def request_timeout(self) -> float | None:
        return self.keepalive_timeout if self.io_timeout is None else self.io_timeout


class HTTPError(Exception):
    """The request cannot be served: answer ``status`` and close the connection.

    Raised to the application by ``wsgi.input`` when the body turns out to be
    malformed (400) or too large (413); if the application lets it through
    before starting its response, the client gets that status.
    """

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason or HTTPStatus(status).phrase

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class ClientDisconnected(ConnectionError):
    """The client closed the connection before sending the whole request body."""


class ChunkReadError(ValueError):
    """A chunked request body that is malformed or ends early (eventlet's
    ``wsgi.ChunkReadError``): what ``wsgi.input`` raises for one is also a
    ``HTTPError`` (malformed) or a ``ClientDisconnected`` (cut short)."""


class MalformedChunks(HTTPError, ChunkReadError):
    """A chunked request body that is malformed."""


class ChunksCutShort(ClientDisconnected, ChunkReadError):
    """The client closed the connection in the middle of a chunked body."""


class ParseError:
    """Queued in place of a request that could not be read: answer ``status``, close."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason


class Request:
    """One request whose head has been read.  ``body`` fills as the body arrives."""

    __slots__ = (
        "method", "target", "protocol", "headers", "keep_alive", "upgrade", "content_length",
        "expect_continue", "body", "body_received", "body_done", "leftover", "asked_keep_alive",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        target: bytes,
        protocol: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        upgrade: bool,
        content_length: int | None,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.protocol = protocol
        self.headers = headers
        self.keep_alive = keep_alive
        #: An Upgrade (or CONNECT) request: the parser stops after it.
        self.upgrade = upgrade
        self.content_length = content_length
        self.expect_continue = expect_continue
        #: Body chunks received and not yet consumed (None until the first one).
        self.body: deque[bytes] | None = None
        self.body_received = 0
        self.body_done = False
        #: After an upgrade request: the bytes that followed it.
        self.leftover: bytes | None = None
        #: The client sent ``Connection: keep-alive`` (a response may say it back).
        self.asked_keep_alive = False
