"""Helpers for the WSGI server tests: a server in its own OS thread, raw HTTP reading.

The server runs on its own hub in a background thread, so the test side can use
unmodified blocking clients (stdlib sockets, requests, urllib3) in the main
thread, exactly as real clients would talk to it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import nettools
from nettools.web import wsgi

from . import serverthread

LOCAL = "127.0.0.1"


class ServerThread(serverthread.ServerThread):
    """A ``WSGIServer`` serving ``app`` from a background thread (``with`` block);
    ``listener`` (an option) makes its listening socket, in that thread."""

    def __init__(self, app: Callable, **options: Any) -> None:
        options.setdefault("log_output", False)
        self.app = app
        self.options = options
        listener = options.pop("listener", None)
        super().__init__(lambda sock: wsgi.WSGIServer(sock, app, **options), listener)

    def connections(self) -> int:
        return self.call(lambda: len(self.server.server.connections))


class Holder:
    """Holds requests in the server's hub until released; tells the test
    thread once ``count`` of them are held."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.held = 0
        self.all_held = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        self.held += 1
        if self.held >= self.count:
            self.all_held.set()
        # A pool thread waits for the test's word (20 s at most): the hub serves on.
        nettools.tpool.execute(self.released.wait, 20)


def connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection((LOCAL, port), timeout=timeout)
    return sock


class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


def read_response(f: Any, head: bool = False) -> Response:
    """Read one response from the binary file ``f`` (``sock.makefile('rb')``)."""
    status_line = f.readline()
    if not status_line:
        raise EOFError("connection closed before a response")
    _version, status, *reason = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = []
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    resp = Response(int(status), reason[0] if reason else "", headers, b"")
    code = int(status)
    if head or code in (204, 304) or 100 <= code < 200:
        return resp
    if (resp.header("Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            parts.append(f.read(size))
            f.readline()
        resp.body = b"".join(parts)
    elif resp.header("Content-Length") is not None:
        resp.body = f.read(int(resp.header("Content-Length")))
    else:
        resp.body = f.read()
    return resp


def recv_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the peer sends until it closes (bounded)."""
    chunks = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def get(port: int, request: bytes) -> bytes:
    """Send one raw request; everything the server answers until it closes."""
    sock = connect(port)
    sock.sendall(request)
    data = recv_until_closed(sock)
    sock.close()
    return data


def is_closed(sock: socket.socket, timeout: float = 5) -> bool:
    """True if the peer closes ``sock`` (EOF or reset) within ``timeout``, with no data."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def hello(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode("latin-1")]


def drain_on_stop(
    port: int, stop: Callable[[], Any], gate: tuple[Any, Any],
    while_held: Callable[[], Any] | None = None,
) -> bytes:
    """In the server's hub (green sockets): an idle keep-alive connection and a
    request in flight to ``/slow`` (held by ``gated_app``'s ``gate``), then
    ``stop()``.  Checks the idle one is closed at once, calls ``while_held()``,
    and returns the busy one's whole response, sent once the request is released."""
    entered, release = gate
    idle = nettools.connect((LOCAL, port))
    idle.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).endswith(b"done /fast")  # answered, kept alive
    busy = nettools.connect((LOCAL, port))
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    entered.wait()
    stop()
    with nettools.Timeout(10):
        assert read_all(idle) == b""  # closed by the stop, not left waiting
        if while_held is not None:
            while_held()
        release.send()
        response = read_all(busy)
    idle.close()
    busy.close()
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"done /slow")
    return response


def gated_app() -> tuple[Callable, tuple[Any, Any]]:
    """A WSGI app answering ``done PATH``, whose ``/slow`` requests wait: ``(app,
    (entered, release))``, two hub Events."""
    entered, release = nettools.Event(), nettools.Event()

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.send()
            release.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done " + environ["PATH_INFO"].encode()]

    return app, (entered, release)


def read_all(sock: Any) -> bytes:
    """All a (green) socket sends until the peer closes."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data
