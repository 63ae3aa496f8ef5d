"""The request body stream (``wsgi.input``), received only as the application reads it.

Before the first read of a body whose client sent ``Expect: 100-continue`` the
connection answers ``100 Continue`` (and only then does such a client send it).
As eventlet's input, it can carry headers the application sets first
(``set_hundred_continue_response_headers``), and the application may send
further ``100 Continue`` responses of its own before its final response.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..http import Request
    from .connection import WSGIConnection

__all__ = ["Input", "EmptyInput", "EMPTY_INPUT"]


class Input:
    """``wsgi.input``: the request body, received only as the application reads it.

    ``read(n)`` returns ``n`` bytes unless the body ends first; past the end of
    the body every read returns ``b""``.  A body that turns out malformed or too
    large raises ``HTTPError``; a client that leaves mid-body raises
    ``ClientDisconnected``.
    """

    __slots__ = ("_conn", "_req", "_buf", "_continue_headers")

    def __init__(self, conn: WSGIConnection, req: Request) -> None:
        self._conn = conn
        self._req = req
        self._buf = b""
        self._continue_headers: list[tuple[str, str]] = []

    def set_hundred_continue_response_headers(
        self, headers: list[tuple[str, str]], capitalize_response_headers: bool = True
    ) -> None:
        """Headers for the next ``100 Continue`` this request's client gets (eventlet's).

        Names are capitalized as the server's response headers are."""
        self._continue_headers = list(headers)

    def send_hundred_continue_response(self) -> None:
        """Send a ``100 Continue`` now, with the headers set (eventlet's; for
        protocols of several phases).  Nothing once the response has started.

        After a chunked body read to its end, the client answers with another
        chunked body: further reads return it (OpenStack Swift's multi-phase
        requests)."""
        conn = self._conn
        if conn.headers_sent:
            return
        conn.send_continue(self._continue_headers, again=True)
        self._continue_headers = []
        if not self._buf:
            conn.expect_another_body(self._req)

    def _chunk(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        req = self._req
        if req.expect_continue and not self._conn.continue_sent:
            # Even when the body came along already: the client asked, and
            # eventlet's clients count on the interim response.
            self._conn.send_continue(self._continue_headers)
            self._continue_headers = []
        while not req.body:
            if req.body_done:
                return b""
            self._conn.read_body(req)
        return req.body.popleft()

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            parts = [buf] if buf else []
            while chunk := self._chunk():
                parts.append(chunk)
            self._buf = b""
            return b"".join(parts)
        if len(buf) >= size:
            self._buf = buf[size:]
            return buf[:size]
        parts = [buf] if buf else []
        have = len(buf)
        while have < size:
            chunk = self._chunk()
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buf = data[size:]
        return data[:size]

    def read1(self, size: int = -1) -> bytes:
        """At most ``size`` bytes, receiving at most once."""
        if not self._buf:
            self._buf = self._chunk()
        buf = self._buf
        if size is None or size < 0 or size >= len(buf):
            self._buf = b""
            return buf
        self._buf = buf[size:]
        return buf[:size]

    def readline(self, size: int | None = -1) -> bytes:
        buf = self._buf
        limit = size if size is not None and size >= 0 else sys.maxsize
        start = 0
        while True:
            end = buf.find(b"\n", start, limit)
            if end >= 0:
                end += 1
                break
            if len(buf) >= limit:
                end = limit
                break
            chunk = self._chunk()
            if not chunk:
                end = len(buf)
                break
            start = len(buf)
            buf += chunk
        self._buf = buf[end:]
        return buf[:end]

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Input:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class EmptyInput:
    """``wsgi.input`` of a request without a body (shared: it has no state)."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    read1 = readline = read

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


#: The one ``wsgi.input`` of every request without a body.
EMPTY_INPUT = EmptyInput()
