"""A WSGI (PEP 3333) server on nettools' HTTP/1.1 connection handling.

    from nettools.web import wsgi

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, World!\\n"]

    wsgi.server(nettools.listen(("127.0.0.1", 8080)), app)   # blocks, as eventlet's

``server()`` takes eventlet's core arguments; ``WSGIServer`` is the same
server as an object with ``start``/``stop(timeout)``/``serve_forever``.  Both
run on ``nettools.net.Server``: one greenthread per connection, TCP_NODELAY,
TLS handshakes per connection, and a graceful ``stop`` that closes idle
keep-alive connections at once while in-flight requests finish (their
responses carry ``Connection: close``).

nettools additions to the environ:

* ``nettools.posthooks``: a list; append callables ``hook(environ)`` (or
  eventlet-style ``(hook, args, kwargs)`` tuples, called as
  ``hook(environ, *args, **kwargs)``).  They run after the response has been
  sent, or the client has gone.
* ``nettools.takeover()``: returns ``(sock, leftover)`` -- the raw connection
  and the bytes already received beyond this request.  The application then
  owns the connection: the server writes no response of its own, never reads
  from the socket again, iterates and closes whatever the application
  returns, runs the posthooks and closes the socket.  (For websockets.)
* ``nettools.set_idle(idle)``: mark the connection idle (True) or busy for a
  graceful stop; for protocols that run after a takeover.
* ``nettools.on_stop(closer)``: a graceful stop that finds the connection
  idle calls ``closer()`` (in its own greenthread) instead of shutting the
  socket down; for protocols that say goodbye (a websocket's close 1001).
* ``nettools.server``: the ``WSGIServer``.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from ..net import Server, listen
from .http import (
    RECV_SIZE,
    ClientDisconnected,
    HttpConnection,
    HTTPError,
    Limits,
    ParseError,
    Request,
    error_response,
    http_date,
)

__all__ = [
    "server",
    "WSGIServer",
    "FileWrapper",
    "AccessLog",
    "DEFAULT_LOG_FORMAT",
    "HTTPError",
    "ClientDisconnected",
    "plain_response",
]

log = logging.getLogger("nettools.web.wsgi")

#: Apache's "combined" format plus the time taken; fields: client_ip, client_port,
#: date_time, request_line, method, path, protocol, status_code, body_length,
#: referer, user_agent, wall_seconds.
DEFAULT_LOG_FORMAT = (
    '%(client_ip)s - - [%(date_time)s] "%(request_line)s" %(status_code)s %(body_length)s '
    '"%(referer)s" "%(user_agent)s" %(wall_seconds).6f'
)

SERVER_SOFTWARE = "nettools.web.wsgi"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Statuses whose responses never have a body (RFC 9110 6.4.1).
_NO_BODY = frozenset({"204", "304"} | {str(c) for c in range(100, 200)})
# Response headers the server looks at (framing) or sets itself.
_LENGTH, _DATE, _CONNECTION, _ENCODING = range(4)
_HOP = {
    "content-length": _LENGTH,
    "date": _DATE,
    "connection": _CONNECTION,
    "transfer-encoding": _ENCODING,
}
# Bodies (of a list result) up to this size go out joined with the head in one send.
_JOIN_LIMIT = 256 * 1024
# sendfile() in pieces: each piece gets the whole I/O timeout.
_SENDFILE_PIECE = 8 << 20

# HTTP header name (raw bytes) -> environ key; None for names that are dropped.
_ENV_KEYS: dict[bytes, str | None] = {}
_ENV_KEYS_MAX = 2048


def _env_key(name: bytes) -> str | None:
    """The environ key for header ``name``; None for names with '_' (which would
    be indistinguishable from '-' in the environ: a header-spoofing hole)."""
    if b"_" in name:
        key = None
    else:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_ENV_KEYS) < _ENV_KEYS_MAX:  # bounded: clients choose the names
        _ENV_KEYS[name] = key
    return key


_MISSING = object()


def plain_response(
    start_response: Callable, status: str, text: str, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    """A short ``text/plain`` answer from a WSGI app: ``status`` (e.g. ``"404 Not
    Found"``), the body ``text`` and any ``extra`` headers."""
    body = text.encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


# --------------------------------------------------------------- wsgi.input


class Input:
    """``wsgi.input``: the request body, received only as the application reads it.

    ``read(n)`` returns ``n`` bytes unless the body ends first; past the end of
    the body every read returns ``b""``.  A body that turns out malformed or too
    large raises ``HTTPError``; a client that leaves mid-body raises
    ``ClientDisconnected``.
    """

    __slots__ = ("_conn", "_req", "_buf")

    def __init__(self, conn: WSGIConnection, req: Request) -> None:
        self._conn = conn
        self._req = req
        self._buf = b""

    def _chunk(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        req = self._req
        while not req.body:
            if req.body_done:
                return b""
            conn = self._conn
            if req.expect_continue and not conn.continue_sent:
                conn.send_continue()
            conn.read_body(req)
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


class _EmptyInput:
    """``wsgi.input`` of a request without a body (shared: it has no state)."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    read1 = readline = read

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> _EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


_EMPTY_INPUT = _EmptyInput()


# --------------------------------------------------------- wsgi.file_wrapper


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


# ---------------------------------------------------------------- access log


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _log_time() -> str:
    """Local time as Apache logs it (``10/Oct/2000:13:55:36 -0700``), whatever the locale."""
    t = time.localtime()
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:" + time.strftime(
        "%H:%M:%S %z", t
    )


class AccessLog:
    """Writes one line per request, ``fmt % fields``, to a logger or a file-like."""

    def __init__(self, target: Any, fmt: str = DEFAULT_LOG_FORMAT, x_forwarded_for: bool = True):
        self.fmt = fmt
        self.x_forwarded_for = x_forwarded_for
        if isinstance(target, logging.Logger):
            self._emit = lambda line: target.info("%s", line)
        else:
            self._emit = lambda line: target.write(line + "\n")

    def __call__(
        self, environ: dict, status: str | None, body_length: int, started: float
    ) -> None:
        client_ip = environ.get("REMOTE_ADDR", "-")
        if self.x_forwarded_for:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").replace(" ", "")
            if forwarded:
                client_ip = f"{forwarded},{client_ip}"
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("RAW_URI", "-")
        protocol = environ.get("SERVER_PROTOCOL", "-")
        fields = {
            "client_ip": client_ip,
            "client_port": environ.get("REMOTE_PORT", "-"),
            "date_time": _log_time(),
            "request_line": f"{method} {path} {protocol}",
            "method": method,
            "path": path,
            "protocol": protocol,
            "status_code": (status or "-").split(" ", 1)[0],
            "body_length": body_length,
            "referer": environ.get("HTTP_REFERER", "-"),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
            "wall_seconds": time.monotonic() - started,
        }
        try:
            self._emit(self.fmt % fields)
        except Exception:
            log.exception("access log failed")


# ------------------------------------------------------------ one connection


class WSGIConnection(HttpConnection):
    """Serves the requests of one connection to the WSGI application, in order."""

    def __init__(self, wsgi_server: WSGIServer, sock: Any, addr: Any) -> None:
        net_server = wsgi_server.server
        super().__init__(
            sock, wsgi_server._view, wsgi_server.limits, wsgi_server.parser, net_server.set_idle
        )
        self.wsgi_server = wsgi_server
        self.net_server = net_server
        self.app = wsgi_server.app
        env = wsgi_server.base_environ.copy()
        if isinstance(addr, tuple) and len(addr) >= 2:
            env["REMOTE_ADDR"] = addr[0]
            env["REMOTE_PORT"] = str(addr[1])
        else:
            env["REMOTE_ADDR"] = ""
            env["REMOTE_PORT"] = ""
        env["nettools.takeover"] = self.takeover
        env["nettools.set_idle"] = self.set_idle
        env["nettools.on_stop"] = self.on_stop
        self.base_env = env
        self.keepalive = wsgi_server.keepalive_enabled
        self.access_log = wsgi_server.access_log
        self.http10_only = wsgi_server.max_http_version == "HTTP/1.0"
        self.status_prefix = "HTTP/1.0 " if self.http10_only else "HTTP/1.1 "
        self.capitalize = wsgi_server.capitalize_response_headers
        self.min_chunk = wsgi_server.minimum_chunk_size or 0
        # Per request (reset in handle):
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
        self.taken_over = False

    def run(self) -> None:
        """Serve requests until the connection is to be closed (the caller closes it)."""
        try:
            while True:
                req = self.next_request()
                if req is None:
                    return
                if type(req) is ParseError:
                    self._send_quietly(error_response(req.status, req.reason))
                    if self.access_log is not None:
                        self.access_log(self.base_env, str(req.status), 0, time.monotonic())
                    self.linger_close()
                    return
                if not self.handle(req):
                    return
        finally:
            # The parser and the environ hold bound methods of this object: break
            # those cycles now rather than leave each connection to the collector.
            self.release()

    # ------------------------------------------------------------ environ

    def environ(self, req: Request) -> dict:
        env = self.base_env.copy()
        env["REQUEST_METHOD"] = req.method
        target = req.target
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
        else:
            path, query = _split_target(target)
        env["PATH_INFO"] = (
            unquote_to_bytes(path).decode("latin-1") if b"%" in path else path.decode("latin-1")
        )
        env["QUERY_STRING"] = query.decode("latin-1")
        env["RAW_URI"] = target.decode("latin-1")
        env["SERVER_PROTOCOL"] = req.protocol
        keys = _ENV_KEYS
        for name, value in req.headers:
            key = keys.get(name, _MISSING)
            if key is _MISSING:
                key = _env_key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            if text[-1:] in (" ", "\t"):
                text = text.rstrip(" \t")
            if key in env:
                # Repeated header: one value, as CGI does ("; " for cookies, RFC 6265).
                env[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
            else:
                env[key] = text
        env["wsgi.input"] = _EMPTY_INPUT if req.body_done and not req.body else Input(self, req)
        env["nettools.posthooks"] = []
        return env

    # ------------------------------------------------------------ requests

    def handle(self, req: Request) -> bool:
        """Serve one request; True if the connection may go on to the next."""
        self.req = req
        self.status = None
        self.headers_sent = self.continue_sent = self.chunked = self.taken_over = False
        self.keep = False
        self.body_sent = 0
        env = self.environ(req)
        started = time.monotonic() if self.access_log is not None else 0.0
        result = None
        try:
            result = self.app(env, self.start_response)
            if self.taken_over:
                self.keep = False
                self._discard(result)
            elif type(result) is list and len(result) == 1 and not self.headers_sent:
                body = result[0]  # the common case: the whole body in one piece
                self._send_head(len(body), body)
            else:
                self._send_result(result, req)
        except (ClientDisconnected, BrokenPipeError, ConnectionResetError):
            self.keep = False  # the client left: nobody to answer
        except TimeoutError:
            self._fail(408, None)  # the client stalled its body (or its reading)
        except HTTPError as exc:
            self._fail(exc.status, None)
        except Exception as exc:
            if self.taken_over:
                log.exception("error in a WSGI application after takeover")
                self.keep = False
            else:
                self._fail(500, exc)
        finally:
            if type(result) is not list:
                self._close(result)
            if env["nettools.posthooks"]:
                self._posthooks(env)
        if self.access_log is not None and not self.taken_over:
            self.access_log(env, self.status, self.body_sent, started)
        if not self.keep:
            return False
        if not req.body_done:
            # The application left part of the body unread.  If the client
            # waits for "100 Continue" it may never send it: close.  Else drop it.
            if req.expect_continue and not self.continue_sent:
                return False
            return self.discard_body(req)
        return True

    def release(self) -> None:
        super().release()
        self.base_env = {}

    def _fail(self, status: int, exc: BaseException | None) -> None:
        """The application failed: answer ``status`` if nothing was sent yet."""
        self.keep = False
        if exc is not None:
            log.error(
                "error in WSGI application (%s %s)",
                self.req.method,
                self.req.target.decode("latin-1"),
                exc_info=exc,
            )
        if self.headers_sent:
            return  # mid-body: closing the connection is the only signal left
        body = None
        if exc is not None and self.wsgi_server.debug:
            body = "".join(traceback.format_exception(exc))
        self.status = f"{status} "
        self._send_quietly(error_response(status, body=body))
        if status in (400, 413):
            self.linger_close()  # the client may still be sending the body

    def _posthooks(self, env: dict) -> None:
        for hook in env["nettools.posthooks"]:
            try:
                if isinstance(hook, tuple):
                    func, args, kwargs = hook
                    func(env, *args, **kwargs)
                else:
                    hook(env)
            except Exception:
                log.exception("error in a posthook")

    def _close(self, result: Any) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("error closing a WSGI response")
                self.keep = False

    @staticmethod
    def _discard(result: Any) -> None:
        for _ in result:
            pass

    # ---------------------------------------------------------- callables

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
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not self.headers_sent:
            self._send_head(None, data)
        elif data:
            self._send_chunk(data)

    def takeover(self) -> tuple[Any, bytes]:
        """Hand the raw connection to the application; see the module docstring."""
        if self.headers_sent:
            raise RuntimeError("cannot take over a connection whose response has started")
        self.taken_over = True
        return self.sock, self.leftover_after(self.req)

    def set_idle(self, idle: bool = True) -> None:
        self.net_server.set_idle(self.sock, idle)

    def on_stop(self, closer: Callable[[], Any] | None) -> None:
        self.net_server.on_stop(self.sock, closer)

    def send_continue(self) -> None:
        """``100 Continue``, before the application's first read of the body."""
        if not self.headers_sent and not self.continue_sent:
            self.continue_sent = True
            self.sock.sendall(_CONTINUE)

    # ----------------------------------------------------------- response

    def _send_result(self, result: Any, req: Request) -> None:
        if type(result) is list or type(result) is tuple:
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
                self._send_head(len(body), body)
            elif body:
                self._send_chunk(body)
            self._finish()
            return
        if type(result) is FileWrapper and not self.headers_sent:
            where = result.regular_file()
            if where is not None:
                self._sendfile(result, *where)
                return
        min_chunk = self.min_chunk
        pending: list[bytes] = []
        pending_len = 0
        for data in result:
            if not data:
                continue
            if min_chunk:
                # eventlet's minimum_chunk_size: gather small pieces into bigger sends.
                pending.append(data)
                pending_len += len(data)
                if pending_len < min_chunk:
                    continue
                data = b"".join(pending)
                pending, pending_len = [], 0
            if not self.headers_sent:
                self._send_head(None, data)
            else:
                self._send_chunk(data)
        if pending:
            data = b"".join(pending)
            if not self.headers_sent:
                self._send_head(len(data), data)
            else:
                self._send_chunk(data)
        if not self.headers_sent:
            self._send_head(0, b"")
        self._finish()

    def _send_parts(self, parts: list | tuple, size: int) -> None:
        """A large list body: the head with the first part, then the rest."""
        self._send_head(size, parts[0])
        for part in parts[1:]:
            self._send_chunk(part)
        self._finish()

    def _sendfile(self, wrapper: FileWrapper, offset: int, size: int) -> None:
        declared = any(name.lower() == "content-length" for name, _ in self.resp_headers)
        self._send_head(None if declared else size, b"")
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

    def _send_head(self, length: int | None, body: bytes) -> None:
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
        http10 = req.protocol == "HTTP/1.0"
        if self.http10_only:
            keep = keep and http10
            http10 = True
        lines = [self.status_prefix, status, "\r\n"]
        append = lines.append
        capitalize = self.capitalize
        declared = None
        has_date = False
        for name, value in self.resp_headers:
            kind = _HOP.get(name.lower())
            if kind is not None:
                if kind == _LENGTH:
                    declared = int(value)
                elif kind == _DATE:
                    has_date = True
                else:
                    # Framing is the server's business; an app's "close" is honoured.
                    if kind == _CONNECTION and value.strip().lower() == "close":
                        keep = False
                    continue
            if capitalize:
                name = "-".join(part.capitalize() for part in name.split("-"))
            append(f"{name}: {value}\r\n")
        code = status[:3]
        no_body = code in _NO_BODY
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
        if no_body or declared is not None:
            pass
        elif length is not None:
            append(f"Content-Length: {length}\r\n")
        elif req.method == "HEAD":
            pass
        elif not http10:
            append("Transfer-Encoding: chunked\r\n")
            self.chunked = True
        else:
            keep = False  # the end of the body is the end of the connection
        if not keep:
            append("Connection: close\r\n")
        elif http10:
            append("Connection: keep-alive\r\n")
        text = "".join(lines)
        # Each piece ends in exactly one CRLF: any other CR or LF came from the
        # application and would split the response (header injection).
        n = len(lines) - 2
        if text.count("\n") != n or text.count("\r") != n or not code.isdigit():
            raise ValueError(f"invalid status or header in the response: {text!r}")
        head = text.encode("latin-1")
        date = b"" if has_date else http_date()
        if not sends_body or not body:
            data = b"".join((head, date, b"\r\n"))
        elif self.chunked:
            data = b"".join((head, date, b"\r\n%x\r\n" % len(body), body, b"\r\n"))
        else:
            data = b"".join((head, date, b"\r\n", body))
        # Only now is the response committed: an error above still gets a 500.
        self.keep = keep
        self.headers_sent = True
        self.sock.sendall(data)
        if sends_body:
            self.body_sent = len(body)


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(path, query)`` of an absolute-form (``http://host/p?q``), authority-form
    (CONNECT ``host:port``) or asterisk-form (``*``) request target."""
    if target == b"*":
        return b"*", b""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target, b""
    return url.path or b"", url.query or b""


# ------------------------------------------------------------------- server


class WSGIServer:
    """A WSGI server on ``sock`` (a listening socket, or an address to listen on).

    Options, with eventlet's names where eventlet has one:

    * ``max_size`` (1024): connections served at once; or pass ``custom_pool``.
    * ``keepalive`` (True): True keeps connections alive up to
      ``keepalive_timeout`` (75 s) between requests, a number is that timeout,
      False closes every connection after one response.
    * ``log`` (sys.stderr), ``log_format``, ``log_output`` (True),
      ``log_x_forwarded_for`` (True): the access log, to a file-like or a
      ``logging.Logger``.  Nothing is done per request when it is off.
    * ``url_length_limit`` (8192, 414), ``max_header_size`` (64 KiB, 431),
      ``max_headers`` (100, 431), ``max_body_size`` (1 GiB, 413; None: none),
      ``header_timeout`` (10 s, 408), ``socket_timeout`` (each receive or send
      within a request; default: the keep-alive timeout).
    * ``debug`` (False): tracebacks in 500 responses.  (eventlet defaults to True.)
    * ``environ``: extra keys for every request's environ.
    * ``ssl_context``: serve TLS (or pass a listener wrapped with ``wrap_ssl``).
    * ``minimum_chunk_size`` (None): gather a streamed body into sends of at
      least this size.  ``capitalize_response_headers`` (False): send header
      names Capitalized-Like-This.  ``max_http_version`` ("HTTP/1.1").
    * ``parser``: the parser class (``httptools.HttpRequestParser`` API).
    """

    def __init__(
        self,
        sock: Any,
        app: Callable,
        *,
        log: Any = None,
        environ: dict | None = None,
        max_size: int | None = None,
        max_http_version: str = "HTTP/1.1",
        minimum_chunk_size: int | None = None,
        log_x_forwarded_for: bool = True,
        custom_pool: Any = None,
        keepalive: bool | float = True,
        log_output: bool = True,
        log_format: str = DEFAULT_LOG_FORMAT,
        url_length_limit: int = 8192,
        debug: bool = False,
        socket_timeout: float | None = None,
        capitalize_response_headers: bool = False,
        keepalive_timeout: float | None = 75.0,
        header_timeout: float | None = 10.0,
        max_header_size: int = 64 * 1024,
        max_headers: int = 100,
        max_body_size: int | None = 1 << 30,
        ssl_context: Any = None,
        parser: Callable[[Any], Any] | None = None,
        name: str = "wsgi",
    ) -> None:
        if not hasattr(sock, "accept"):
            sock = listen(sock)
        if max_http_version not in ("HTTP/1.1", "HTTP/1.0"):
            raise ValueError(f"max_http_version must be HTTP/1.1 or HTTP/1.0: {max_http_version!r}")
        self.app = app
        self.keepalive_enabled = bool(keepalive)
        if keepalive is not True and not isinstance(keepalive, bool):
            keepalive_timeout = float(keepalive)
        self.limits = Limits(
            max_request_line=url_length_limit,
            max_header_size=max_header_size,
            max_headers=max_headers,
            max_body_size=max_body_size,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            io_timeout=socket_timeout,
        )
        self.max_http_version = max_http_version
        self.minimum_chunk_size = minimum_chunk_size
        self.capitalize_response_headers = capitalize_response_headers
        self.debug = debug
        self.parser = parser or httptools.HttpRequestParser
        self.access_log: AccessLog | None = None
        if log_output:
            self.access_log = AccessLog(
                sys.stderr if log is None else log, log_format, log_x_forwarded_for
            )
        # One receive buffer for every connection: see nettools.web.http.
        self._view = memoryview(bytearray(RECV_SIZE))
        self.server = Server(
            sock,
            self._handle,
            max_size or 1024,
            pool=custom_pool,
            ssl_context=ssl_context,
            name=name,
        )
        self.base_environ = self._base_environ(sock, environ)

    def _base_environ(self, sock: Any, extra: dict | None) -> dict:
        try:
            addr = sock.getsockname()
        except OSError:
            addr = ""
        if isinstance(addr, tuple):
            host, port = addr[0], str(addr[1])
        else:
            host, port = (addr.decode() if isinstance(addr, bytes) else addr) or "localhost", ""
        env = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.ssl_context is not None else "http",
            "wsgi.errors": sys.stderr,
            # Requests run in greenthreads of one OS thread, concurrently:
            # an application must not assume one request at a time.
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "nettools.server": self,
        }
        if extra:
            env.update(extra)
        return env

    def _handle(self, sock: Any, addr: Any) -> None:
        WSGIConnection(self, sock, addr).run()

    # ------------------------------------------------------------ control

    @property
    def address(self) -> Any:
        """The listening address (useful after binding port 0)."""
        return self.server.address

    @property
    def socket(self) -> Any:
        return self.server.socket

    def start(self) -> WSGIServer:
        """Start accepting in a background greenthread; returns self."""
        self.server.start()
        return self

    def serve_forever(self) -> None:
        """Serve until stopped (or closed)."""
        self.server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle keep-alive connections, let in-flight requests
        finish (answered with ``Connection: close``) for up to ``timeout`` seconds,
        then kill what is left."""
        self.server.stop(timeout)

    def close(self) -> None:
        """Stop accepting; connections carry on."""
        self.server.close()

    def install_signal_handlers(self, drain_timeout: float | None = 30.0) -> None:
        """SIGINT and SIGTERM stop the server gracefully (main thread only)."""
        self.server.install_signal_handlers(drain_timeout)


def server(
    sock: Any,
    site: Callable,
    log: Any = None,
    environ: dict | None = None,
    max_size: int | None = None,
    max_http_version: str = "HTTP/1.1",
    protocol: Any = None,
    server_event: Any = None,
    minimum_chunk_size: int | None = None,
    log_x_forwarded_for: bool = True,
    custom_pool: Any = None,
    keepalive: bool | float = True,
    log_output: bool = True,
    log_format: str = DEFAULT_LOG_FORMAT,
    url_length_limit: int = 8192,
    debug: bool = False,
    socket_timeout: float | None = None,
    capitalize_response_headers: bool = False,
    *,
    handle_signals: bool = False,
    drain_timeout: float | None = 30.0,
    **options: Any,
) -> None:
    """Serve the WSGI application ``site`` on the listening socket ``sock``; blocks.

    eventlet's ``wsgi.server`` arguments (see ``WSGIServer``), plus nettools'
    options as keywords.  ``server_event``, if given, receives the
    ``WSGIServer`` (``server_event.send(srv)``) once it is listening.  With
    ``handle_signals`` SIGINT and SIGTERM stop it gracefully; Ctrl-C
    (KeyboardInterrupt) does too.  Either way in-flight requests get up to
    ``drain_timeout`` seconds, then the function returns.
    """
    if protocol is not None:
        raise ValueError("nettools.web.wsgi.server does not take a protocol class")
    srv = WSGIServer(
        sock,
        site,
        log=log,
        environ=environ,
        max_size=max_size,
        max_http_version=max_http_version,
        minimum_chunk_size=minimum_chunk_size,
        log_x_forwarded_for=log_x_forwarded_for,
        custom_pool=custom_pool,
        keepalive=keepalive,
        log_output=log_output,
        log_format=log_format,
        url_length_limit=url_length_limit,
        debug=debug,
        socket_timeout=socket_timeout,
        capitalize_response_headers=capitalize_response_headers,
        **options,
    )
    if handle_signals:
        srv.install_signal_handlers(drain_timeout)
    srv.start()
    if server_event is not None:
        server_event.send(srv)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        # Not ``log``: here that is the parameter (the access log's target).
        logging.getLogger(__name__).info("wsgi: interrupted, stopping")
        srv.stop(drain_timeout)

