"""The response-sending half of a WSGI connection.

``ResponseWriter`` turns what the application gives (``start_response``, the
``write`` callable, the iterable it returns) into an HTTP/1.x response: the
status line and headers, the body framed by Content-Length, chunked encoding or
the end of the connection, zero-copy ``sendfile`` for a ``FileWrapper`` of a
regular file, and the keep-alive decision.  ``WSGIConnection`` (the
request-handling half) builds on it.
"""

from __future__ import annotations

import _socket
import os
import stat
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..http import DATE, HttpConnection, Limits, Request, http_date
from .head import app_head, capitalized, checked_lines, str_pairs
from .options import WSGIOptions

__all__ = ["ResponseWriter", "FileWrapper", "plain_response", "encode_text"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_time = time.time
_c_send = _socket.socket.send  # the C call: never waits on the hub


def encode_text(data: str) -> bytes:
    """A ``str`` piece of a body, as eventlet's server sends it: ASCII.

    PEP 3333 wants bytes; eventlet's applications often return ``str`` and
    eventlet encodes it, so nettools does too.  Text outside ASCII is an error
    (the application must choose its charset): ``UnicodeEncodeError``, a 500.
    """
    return data.encode("ascii")


def _as_bytes(parts: Any) -> list:
    return [encode_text(p) if type(p) is str else p for p in parts]


# Bodies (of a list result) up to this size go out joined with the head in one send.
_JOIN_LIMIT = 256 * 1024
# sendfile() in pieces: each piece gets the whole I/O timeout.
_SENDFILE_PIECE = 8 << 20


class FileWrapper:
    """``wsgi.file_wrapper``: returned by an application, a regular file goes out
    with ``sendfile`` (zero-copy); anything else is read in ``blksize`` blocks."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterable[bytes]:
        read = self.filelike.read
        while data := read(self.blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def regular_file(self) -> tuple[int, int] | None:
        """``(offset, size left)`` if the file can go out by sendfile, else None."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return None
        return offset, max(st.st_size - offset, 0)


def plain_response(
    start_response: Callable, status: str, text: str, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    """A short ``text/plain`` answer from a WSGI app: ``status`` (e.g. ``"404 Not
    Found"``), the body ``text`` and any ``extra`` headers."""
    body = text.encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


def _sized(result: Any, size: int) -> int | None:
    """The length to send for an iterable result that ended within one piece:
    its size if it has a length (a sequence), else None -- chunked, or up to the
    close on HTTP/1.0 -- as eventlet frames a generator's body."""
    return size if hasattr(result, "__len__") else None


class ResponseWriter(HttpConnection):
    """Sends the response to each request of one connection; see the module docstring.

    For each request the subclass sets ``req`` and starts the per-request
    fields over (``WSGIConnection.handle`` does, inline: it runs per request);
    then the application calls ``start_response`` (and perhaps ``write``), and
    ``send_head`` (a whole body in one piece) or ``send_result`` sends what it
    returned.  ``keep`` says afterwards whether the connection may go on.
    """

    # Slots, as HttpConnection's: no dict per connection.
    __slots__ = (
        "net_server",
        "keepalive",
        "http10_only",
        "status_prefix",
        "capitalize",
        "min_chunk",
        "keepalive_head",
        "req",
        "status",
        "resp_headers",
        "declared",
        "headers_sent",
        "continue_sent",
        "keep",
        "chunked",
        "body_sent",
        "sends_body",
        "taken_over",
        "last_head",
    )

    def __init__(
        self,
        sock: Any,
        view: memoryview,
        limits: Limits,
        parser_factory: Callable[[Any], Any],
        net_server: Any,
        options: WSGIOptions,
    ) -> None:
        super().__init__(sock, view, limits, parser_factory, net_server.set_idle)
        self.net_server = net_server
        self.keepalive = options.keepalive_enabled
        # keepalive given in seconds: keep-alive responses say how long, as
        # eventlet's do, so that clients drop idle connections before we do.
        timeout = options.keepalive
        self.keepalive_head = b""
        if not isinstance(timeout, bool) and int(timeout) > 0:
            seconds = int(timeout)
            self.keepalive_head = b"Connection: keep-alive\r\nKeep-Alive: timeout=%d\r\n" % seconds
        self.http10_only = options.max_http_version == "HTTP/1.0"
        self.status_prefix = "HTTP/1.0 " if self.http10_only else "HTTP/1.1 "
        self.capitalize = options.capitalize_response_headers
        self.min_chunk = options.minimum_chunk_size or 0
        # Per request (started over by the subclass for each request):
        self.req: Request | None = None
        self.status: str | None = None
        self.resp_headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.continue_sent = False
        self.keep = False
        self.chunked = False
        self.body_sent = 0
        self.sends_body = True
        self.declared: int | None = None
        #: The application took the connection over (a websocket): no response of ours.
        self.taken_over = False
        #: The last response's head, when kept alive and framed by its length:
        #: the next response with the same status and headers reuses it (with its
        #: own Content-Length if the length differs).
        self.last_head: tuple | None = None

    # ------------------------------------------------------- the app's callables

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise TypeError(f"status must be a str, not {type(status).__name__}")
        self.status = status
        self.resp_headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable of PEP 3333."""
        if type(data) is str:
            data = encode_text(data)
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not self.headers_sent:
            self.send_head(None, data)
        elif data:
            self._send_chunk(data)

    def send_continue(self, headers: list[tuple[str, str]] = (), again: bool = False) -> None:  # type: ignore[assignment]
        """``100 Continue`` (with ``headers``), before the application's first
        read of the body; ``again``: even if one went already."""
        if self.headers_sent or (self.continue_sent and not again):
            return
        self.continue_sent = True
        if not headers:
            self.sock.sendall(_CONTINUE)
            return
        lines = [_CONTINUE[:-2].decode("latin-1")]
        for name, value in headers:
            if self.capitalize:
                name = capitalized(name)
            lines.append(f"{name}: {value}\r\n")
        head = checked_lines(lines, "header in the 100 Continue response")
        self.sock.sendall(head + b"\r\n")

    # ------------------------------------------------------------------ sending

    def send_result(self, result: Any, min_chunk: int | None = None) -> None:
        """Send the response for the application's ``result`` (whatever its kind);
        ``min_chunk`` overrides the connection's ``minimum_chunk_size`` for it."""
        if type(result) is list or type(result) is tuple:
            if any(type(p) is str for p in result):
                result = _as_bytes(result)
            if len(result) == 1:
                body = result[0]
            elif not result:
                body = b""
            else:
                size = sum(map(len, result))
                if size > _JOIN_LIMIT and not self.headers_sent:
                    self._send_parts(result, size)
                    return
                body = b"".join(result)
            if not self.headers_sent:
                self.send_head(len(body), body)
            elif body:
                self._send_chunk(body)
            self._finish()
            return
        if type(result) is FileWrapper and not self.headers_sent:
            where = result.regular_file()
            if where is not None:
                self._sendfile(result, *where)
                return
        if min_chunk is None:
            min_chunk = self.min_chunk
        pending: list[bytes] = []
        pending_len = 0
        for data in result:
            if not data:
                continue
            if type(data) is str:
                data = encode_text(data)
            if min_chunk:
                # eventlet's minimum_chunk_size: gather small pieces into bigger sends.
                pending.append(data)
                pending_len += len(data)
                if pending_len < min_chunk:
                    continue
                data = b"".join(pending)
                pending, pending_len = [], 0
            if not self.headers_sent:
                self.send_head(None, data)
            else:
                self._send_chunk(data)
        if self.taken_over:
            return  # the application took the connection while we iterated: no response
        if pending:
            data = b"".join(pending)
            if not self.headers_sent:
                self.send_head(_sized(result, len(data)), data)
            else:
                self._send_chunk(data)
        if not self.headers_sent:
            self.send_head(_sized(result, 0), b"")
        self._finish()

    def _send_parts(self, parts: list | tuple, size: int) -> None:
        """A large list body: the head with the first part, then the rest."""
        self.send_head(size, parts[0])
        for part in parts[1:]:
            self._send_chunk(part)
        self._finish()

    def _sendfile(self, wrapper: FileWrapper, offset: int, size: int) -> None:
        declared = any(name.lower() == "content-length" for name, _ in self.resp_headers)
        self.send_head(None if declared else size, b"")
        if not self.sends_body:
            return
        count = size if self.declared is None else min(self.declared, size)
        sock = self.sock
        while count > 0:
            sent = sock.sendfile(wrapper.filelike, offset, min(count, _SENDFILE_PIECE))
            if not sent:
                break
            offset += sent
            count -= sent
            self.body_sent += sent
        self._finish()

    def _finish(self) -> None:
        if self.chunked:
            self.sock.sendall(b"0\r\n\r\n")
        elif self.declared is not None and self.sends_body and self.body_sent < self.declared:
            self.keep = False  # shorter than declared: only closing ends it

    def _send_chunk(self, data: bytes) -> None:
        if not self.sends_body:
            return
        if self.chunked:
            self.sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            declared = self.declared
            if declared is not None and self.body_sent + len(data) > declared:
                data = data[: declared - self.body_sent]
                self.keep = False
            self.sock.sendall(data)
        self.body_sent += len(data)

    def send_head(self, length: int | None, body: bytes) -> None:
        """Send status line and headers, with the first piece of the body.

        ``length`` is the whole body's length when known (then it goes out as
        Content-Length unless the application set one); otherwise the body is
        chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
        """
        status = self.status
        if status is None:
            raise AssertionError("the application returned without calling start_response()")
        req = self.req
        keep = (
            req.keep_alive
            and self.keepalive
            and not self.net_server.stopping
            # A client waiting for "100 Continue" may or may not send the body now.
            and (req.body_done or not req.expect_continue or self.continue_sent)
            # After an Upgrade request not taken over, the parser has stopped.
            and not req.upgrade
        )
        last = self.last_head
        if (
            keep
            and last is not None
            and status == last[0]
            and self.resp_headers == last[1]
            and length is not None
            and len(body) == length
            and req.protocol == "HTTP/1.1"
            and req.method != "HEAD"
            and req.asked_keep_alive is last[8]  # (said back when it asked)
        ):
            if length != last[2]:
                if last[4] is not None:  # the application's Content-Length: the slow path
                    self._send_new_head(keep, length, body)
                    return
                # The same head with another length: only Content-Length differs.
                framed = b"%bContent-Length: %d\r\n%b" % (last[6], length, last[7])
                self.last_head = last = (*last[:2], length, framed, *last[4:])
            # The same head as the last response's: everything but Date is known.
            self.sends_body = True
            self.declared = last[4]
            self.keep = True
            self.headers_sent = True
            if last[5]:
                date = b""
            elif 0.0 <= _time() - DATE[0] < 1.0:
                date = DATE[1]  # http_date()'s, without the call
            else:
                date = http_date()
            data = b"".join((last[3], date, b"\r\n", body))
            if self.plain:
                # The green sendall's first step, without its call: mostly all of it.
                try:
                    sent = _c_send(self.sock, data)
                except BlockingIOError:
                    sent = 0
                if sent < len(data):
                    self.sock.sendall(memoryview(data)[sent:])
            else:
                self.sock.sendall(data)
            self.body_sent = length
            return
        self._send_new_head(keep, length, body)

    def _send_new_head(self, keep: bool, length: int | None, body: bytes) -> None:
        """``send_head`` for a head unlike the last one (``keep``: the request
        allows keeping the connection): built from the application's head."""
        req = self.req
        status = self.status
        http10 = req.protocol == "HTTP/1.0"
        if self.http10_only:
            keep = keep and http10
            http10 = True
        head, declared, has_date, close, no_body = app_head(
            self.status_prefix, status, self.resp_headers, self.capitalize
        )
        if close:
            keep = False
        self.sends_body = sends_body = not no_body and req.method != "HEAD"
        self.declared = declared
        if declared is not None:
            # Never more than the application declared (the rest would be read as
            # the next response), and a short body leaves the client waiting: close.
            if length is not None and length != declared:
                keep = False
            if len(body) > declared:
                body = body[:declared]
                keep = False
        framing = b""
        if no_body or declared is not None:
            pass
        elif length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif req.method == "HEAD":
            pass
        elif not http10:
            framing = b"Transfer-Encoding: chunked\r\n"
            self.chunked = True
        else:
            keep = False  # the end of the body is the end of the connection
        if not keep:
            connection = b"Connection: close\r\n"
        elif self.keepalive_head:
            connection = self.keepalive_head
        elif http10 or req.asked_keep_alive:
            # As eventlet: an HTTP/1.1 client that asked gets the answer too.
            connection = b"Connection: keep-alive\r\n"
        else:
            connection = b""
        date = b"" if has_date else http_date()
        if not sends_body or not body:
            data = b"".join((head, framing, connection, date, b"\r\n"))
        elif self.chunked:
            data = b"".join(
                (head, framing, connection, date, b"\r\n%x\r\n" % len(body), body, b"\r\n")
            )
        else:
            data = b"".join((head, framing, connection, date, b"\r\n", body))
        # Only now is the response committed: an error above still gets a 500.
        self.keep = keep
        self.headers_sent = True
        self.sock.sendall(data)
        if sends_body:
            self.body_sent = len(body)
        if (
            keep
            and sends_body
            and length is not None
            and not self.chunked
            and not http10
            and req.protocol == "HTTP/1.1"
            and type(self.resp_headers) is list
            and str_pairs(self.resp_headers)
        ):
            # Remembered for send_head: (status, headers, length, the head up to
            # Date, the declared length, whether the application sent its own Date,
            # for another length: the application's head, the Connection lines;
            # and whether the client asked for keep-alive).
            self.last_head = (
                status,
                list(self.resp_headers),
                length,
                head + framing + connection,
                declared,
                has_date,
                head,
                connection,
                req.asked_keep_alive,
            )
