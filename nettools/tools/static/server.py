"""``StaticServer``: files under a directory over HTTP/1.1, on nettools' own HTTP layer.

Each connection is an ``HttpConnection`` (``nettools.web.http``: keep-alive,
pipelining, limits, header timeout) run by the shared ``net.Server`` accept
loop (connection limit, graceful stop, TLS).  A request is answered without
any WSGI layer in between:

* GET and HEAD only (405 otherwise); ``Range`` (one range), ``If-Match``,
  ``If-None-Match``, ``If-Modified-Since``, ``If-Unmodified-Since`` and
  ``If-Range`` as ``conditional`` decides; ``ETag`` and ``Last-Modified`` on
  every file.
* A small file (see ``files.SMALL_FILE``) goes out from the cache with its
  head in one send; a larger one with its head, then ``sendfile`` from the
  disk in pieces (each piece gets the whole I/O timeout, so a large file to a
  slow reader is not cut off by a timeout meant for one send).
* A directory's URL without its trailing slash is redirected (301) to the one
  with it; a directory gets its index file, else its listing (``listing``),
  else 403.
* ``paths`` keeps every answer inside the root; a name the policy hides and a
  file that is not there are both 404; one the server may not read is 403.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from dataclasses import dataclass
from socket import AF_INET, AF_INET6
from typing import Any

import httptools

from ...net import Server
from ...web.http import (
    RECV_SIZE,
    HttpConnection,
    Limits,
    ParseError,
    Request,
    error_response,
    http_date,
)
from ...web.wsgi import AccessLog
from ..plumbing.service import Stats
from .conditional import CONDITIONAL_HEADERS, decide
from .files import SMALL_FILE, FileCache, FileInfo, identity, open_regular
from .listing import render_listing
from .paths import BadTarget, Root, split_target, url_path

__all__ = ["StaticServer", "StaticStats", "MAX_REQUEST_BODY"]

#: A GET or HEAD has no use for a body: a larger one is refused (413).
MAX_REQUEST_BODY = 64 * 1024
#: sendfile() in pieces: each piece gets the whole I/O timeout.
SENDFILE_PIECE = 8 << 20

_REASONS = {
    200: b"200 OK", 206: b"206 Partial Content", 301: b"301 Moved Permanently",
    304: b"304 Not Modified", 400: b"400 Bad Request", 403: b"403 Forbidden",
    404: b"404 Not Found", 405: b"405 Method Not Allowed", 412: b"412 Precondition Failed",
    416: b"416 Range Not Satisfiable", 500: b"500 Internal Server Error",
}  # fmt: skip
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
# First bytes (either case) of the request headers the server reads: If-*, Range.
_READ_FIRST = frozenset(b"iIrR")
_TEXT = b"text/plain; charset=utf-8"
_HTML = b"text/html; charset=utf-8"


@dataclass
class StaticStats(Stats):
    """``Stats`` plus what the file server counts."""

    requests: int = 0
    not_modified: int = 0
    partial: int = 0
    not_found: int = 0


class StaticServer:
    """Serve the files under ``root`` on the listening green socket ``sock``.

    ``index``: the file a directory is answered with ("" for none);
    ``listing``: list a directory without one (else 403).  ``follow_symlinks``:
    serve links that lead out of the root; ``hidden``: serve and list names
    starting with a dot.  ``max_conns``: connections at once.
    ``keepalive_timeout``, ``header_timeout``, ``io_timeout``: see
    ``nettools.web.http.Limits``.  ``ssl_context``: serve HTTPS.
    ``access_log``: a file-like or ``logging.Logger`` that gets one line per
    request, in the WSGI server's access-log format (None: no log).
    ``on_request``: called after each response as ``on_request(environ,
    status, bytes_received, bytes_sent, started)`` (``environ`` empty: there is
    none), as a WSGI server's hook of that name (``--metrics``).
    ``cache_entries``, ``cache_bytes``, ``revalidate``: the ``FileCache`` (a file
    changed on disk may be served as it was for ``revalidate`` seconds).
    """

    def __init__(
        self,
        sock: Any,
        root: str,
        *,
        index: str = "index.html",
        listing: bool = True,
        follow_symlinks: bool = False,
        hidden: bool = False,
        max_conns: int = 1000,
        keepalive_timeout: float | None = 75.0,
        header_timeout: float | None = 10.0,
        io_timeout: float | None = None,
        ssl_context: Any = None,
        access_log: Any = None,
        cache_entries: int = 4096,
        cache_bytes: int = 32 * 1024 * 1024,
        revalidate: float = 1.0,
        stats: StaticStats | None = None,
        on_request: Any = None,
    ) -> None:
        if "/" in index:
            raise ValueError(f"the index file is a name, not a path: {index!r}")
        self.root = Root(root, follow_symlinks=follow_symlinks, hidden=hidden)
        self.index = index
        self.listing = listing
        self.access_log = None if access_log is None else AccessLog(access_log)
        self.on_request = on_request
        self.timed = access_log is not None or on_request is not None
        self.stats = stats if stats is not None else StaticStats()
        self.cache = FileCache(cache_entries, cache_bytes, revalidate)
        self.limits = Limits(
            max_body_size=MAX_REQUEST_BODY, header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout, io_timeout=io_timeout,
        )  # fmt: skip
        #: One receive buffer for every connection: see nettools.web.http.
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        self.server = Server(sock, self._handle, max_conns, ssl_context=ssl_context,
                             name="static")
        # MSG_MORE (Linux) holds a head back until the sendfile() behind it (plain TCP only).
        plain_tcp = self.server.ssl_context is None and sock.family in (AF_INET, AF_INET6)
        self.more_flag = getattr(socket, "MSG_MORE", 0) if plain_tcp else 0

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> StaticServer:
        """Start accepting in a background greenthread; returns self."""
        self.server.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle connections, let responses in flight finish
        for up to ``timeout`` seconds."""
        self.server.stop(timeout)

    def _handle(self, sock: Any, addr: Any) -> None:
        StaticConnection(self, sock, addr).run()


class StaticConnection(HttpConnection):
    """The requests of one connection, answered in order."""

    def __init__(self, app: StaticServer, sock: Any, addr: Any) -> None:
        net_server = app.server
        super().__init__(sock, app.recv_buffer, app.limits, httptools.HttpRequestParser,
                         net_server.set_idle)
        self.app = app
        self.addr = addr
        self.stats = app.stats
        self.net_server = net_server
        self.sent = 0  # body bytes of the response in progress (for the access log)

    def run(self) -> None:
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        try:
            while True:
                req = self.next_request()
                if req is None:
                    return
                if type(req) is ParseError:
                    stats.errors += 1
                    self.send_quietly(error_response(req.status, req.reason))
                    self.linger_close()
                    return
                if not self.answer(req):
                    return
        except OSError:
            pass  # the client left (reset, timeout) in the middle of a response
        finally:
            stats.active -= 1
            self.release()

    def feed(self, data: Any) -> None:
        self.stats.bytes_in += len(data)
        super().feed(data)

    def answer(self, req: Request) -> bool:
        """Answer one request; True if the connection goes on to the next."""
        stats = self.stats
        stats.requests += 1
        app = self.app
        started = time.monotonic() if app.timed else 0.0
        keep = req.keep_alive and not req.upgrade and not self.net_server.stopping
        if not req.body_done and req.expect_continue:
            keep = False  # it waits for "100 Continue" before a body it has no use for
        self.sent = 0
        if req.method == "GET" or req.method == "HEAD":
            status = self.serve(req, keep)
        else:
            status = self.send_simple(req, 405, keep, b"Allow: GET, HEAD\r\n")
        if started:
            if app.access_log is not None:
                self.log(req, status, started)
            if app.on_request is not None:
                app.on_request({}, str(status), 0, self.sent, started)
        if not keep:
            return False
        return req.body_done or self.discard_body(req)

    # --------------------------------------------------------------- lookup

    def serve(self, req: Request, keep: bool) -> int:
        """Answer a GET or HEAD; the status sent."""
        try:
            path, query = split_target(req.target)
        except BadTarget:
            return self.send_simple(req, 400, keep)
        headers = _read_headers(req.headers)
        info = self.app.cache.get(path)
        if info is not None:
            return self.send_file(req, info, headers, keep, path)
        app = self.app
        try:
            located = app.root.locate(path)
        except BadTarget:
            return self.send_simple(req, 400, keep)
        if located is None:
            return self.send_simple(req, 404, keep)
        try:
            info = self.lookup(located.path)
        except IsADirectoryError:
            return self.serve_directory(req, located.path, located.segments, located.slash,
                                        query, path, headers, keep)  # fmt: skip
        except OSError as exc:
            return self.send_simple(req, _status_of(exc), keep)
        if info is None:
            return self.send_simple(req, 404, keep)
        app.cache.put(path, info)
        return self.send_file(req, info, headers, keep, path)

    def lookup(self, path: str) -> FileInfo | None:
        """The ``FileInfo`` of the regular file at ``path``, or None if its real
        path leaves the root.  Raises ``OSError`` (``IsADirectoryError`` for a
        directory)."""
        fd, st = open_regular(path)
        try:
            if not self.app.root.contains(_opened_path(fd, path)):
                return None
            body = _read_all(fd, st.st_size) if st.st_size <= SMALL_FILE else None
        finally:
            os.close(fd)
        return FileInfo.of(path, st, body)

    def serve_directory(
        self, req: Request, directory: str, segments: tuple[str, ...], slash: bool,
        query: bytes, key: bytes, headers: dict[bytes, bytes], keep: bool,
    ) -> int:
        """A directory: redirect to its URL with a slash, or its index file, or
        its listing."""
        app = self.app
        root = app.root
        if not root.contains(directory):
            return self.send_simple(req, 404, keep)
        if not slash:
            location = url_path(segments, True).encode() + (b"?" + query if query else b"")
            return self.send_simple(req, 301, keep, b"Location: %s\r\n" % location)
        if app.index:
            try:
                info = self.lookup(os.path.join(directory, app.index))
            except OSError:
                info = None
            if info is not None:
                app.cache.put(key, info)
                return self.send_file(req, info, headers, keep, key)
        if not app.listing:
            return self.send_simple(req, 403, keep)
        try:
            page = render_listing(
                directory, segments, lambda name, path: not root.is_hidden(name)
                and root.contains(path),
            )  # fmt: skip
        except OSError as exc:
            return self.send_simple(req, _status_of(exc), keep)
        return self.send_simple(req, 200, keep, b"Cache-Control: no-cache\r\n", page, _HTML)

    # -------------------------------------------------------------- sending

    def send_file(
        self, req: Request, info: FileInfo, headers: dict[bytes, bytes], keep: bool, key: bytes
    ) -> int:
        """Answer for a file: 200, 206, 304, 412 or 416 as the headers decide."""
        fd = -1
        if info.body is None and req.method == "GET":
            fd, info = self.open_current(info, key)
            if fd < 0:
                return self.send_simple(req, 404, keep)
        try:
            return self._send_file(req, info, headers, keep, fd)
        finally:
            if fd >= 0:
                os.close(fd)

    def open_current(self, info: FileInfo, key: bytes) -> tuple[int, FileInfo]:
        """Open the file ``info`` describes, for sendfile: ``(fd, info)``, the info
        made afresh if the file changed since; ``(-1, info)`` if it is gone."""
        try:
            fd, st = open_regular(info.path)
        except OSError:
            self.app.cache.drop(key)
            return -1, info
        if identity(st) != info.ident:
            if not self.app.root.contains(_opened_path(fd, info.path)):
                os.close(fd)
                self.app.cache.drop(key)
                return -1, info
            info = FileInfo.of(info.path, st)
            self.app.cache.put(key, info)
        return fd, info

    def _send_file(
        self, req: Request, info: FileInfo, headers: dict[bytes, bytes], keep: bool, fd: int
    ) -> int:
        if not headers and info.body is not None:  # the common case, in one piece
            self._send(req, info.head, keep, info.body)
            return 200
        status, first, last = decide(req.method, headers, info)
        stats = self.stats
        validators = b"ETag: %s\r\nLast-Modified: %s\r\n" % (info.etag, info.last_modified)
        if status == 304:
            stats.not_modified += 1
            self._send(req, b"HTTP/1.1 304 Not Modified\r\n" + validators, keep)
            return 304
        if status == 412:
            return self.send_simple(req, 412, keep)
        if status == 416:
            return self.send_simple(req, 416, keep, b"Content-Range: bytes */%d\r\n" % info.size)
        length = last - first + 1
        if status == 206:
            stats.partial += 1
            head = (
                b"HTTP/1.1 206 Partial Content\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"%sAccept-Ranges: bytes\r\nContent-Range: bytes %d-%d/%d\r\n"
                % (info.content_type, length, validators, first, last, info.size)
            )
        else:
            head = info.head
        if fd < 0 or not length:
            body = b"" if info.body is None else info.body[first : last + 1]
            self._send(req, head, keep, body)
        else:
            self._send(req, head, keep, b"", self.app.more_flag)
            self.sendfile(fd, first, length)
        return status

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of the open file from ``offset``, zero-copy where the
        socket allows (TLS reads and copies)."""
        sock = self.sock
        stats = self.stats
        # A plain socket needs only the fd (no file object, no seek after); TLS reads the file.
        with contextlib.ExitStack() as stack:
            if self.app.server.ssl_context is None:
                source: Any = _OpenFd(fd)
            else:
                source = stack.enter_context(os.fdopen(fd, "rb", buffering=0, closefd=False))
            while count > 0:
                sent = sock.sendfile(source, offset, min(count, SENDFILE_PIECE))
                if not sent:
                    raise ConnectionError("the file ended early")
                offset += sent
                count -= sent
                self.sent += sent
                stats.bytes_out += sent

    def send_simple(
        self, req: Request, status: int, keep: bool, extra: bytes = b"",
        body: bytes | None = None, content_type: bytes = _TEXT,
    ) -> int:
        """A short response: ``status`` with ``extra`` header lines and ``body``
        (default: the status as text); no body for HEAD."""
        if status == 404:
            self.stats.not_found += 1
        reason = _REASONS.get(status) or b"%d" % status
        if body is None:
            body = reason + b"\n"
        head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s" % (
            reason, content_type, len(body), extra)
        self._send(req, head, keep, body)
        return status

    def _send(self, req: Request, head: bytes, keep: bool, body: bytes = b"",
              flags: int = 0) -> None:
        """Send ``head`` (status line and header lines) finished with Date,
        Connection and the blank line, then ``body`` unless the request is HEAD."""
        if not keep:
            conn = _CLOSE
        elif req.protocol == "HTTP/1.0":
            conn = _KEEP_ALIVE
        else:
            conn = b""
        if req.method == "HEAD":
            body = b""
        data = b"".join((head, http_date(), conn, b"\r\n", body))
        self.sock.sendall(data, flags)
        self.sent += len(body)
        self.stats.bytes_out += len(data)

    def log(self, req: Request, status: int, started: float) -> None:
        environ = {
            "REMOTE_ADDR": self.addr[0] if isinstance(self.addr, tuple) else "-",
            "REMOTE_PORT": str(self.addr[1]) if isinstance(self.addr, tuple) else "-",
            "REQUEST_METHOD": req.method,
            "RAW_URI": req.target.decode("latin-1"),
            "SERVER_PROTOCOL": req.protocol,
        }
        for name, value in req.headers:
            low = name.lower()
            if low in (b"referer", b"user-agent", b"x-forwarded-for"):
                key = "HTTP_" + low.decode().upper().replace("-", "_")
                environ[key] = value.decode("latin-1")
        self.app.access_log(environ, str(status), self.sent, started)


class _OpenFd:
    """What ``socket.sendfile`` needs of a file on a plain socket: its fd."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def _read_headers(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request headers ``conditional.decide`` reads, by lower-case name."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name and name[0] in _READ_FIRST:
            low = name.lower()
            if low in CONDITIONAL_HEADERS:
                found[low] = value
    return found


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _opened_path(fd: int, path: str) -> str:
    """Where the open file really is: what the kernel says of the fd (no race
    with a link swapped after the check), else the real path of ``path``."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _status_of(exc: OSError) -> int:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return 403
    return 404  # ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, not a regular file


