"""Blocking-socket helpers for either side of a test (stdlib or green sockets),
and a stdlib TCP server in threads to stand behind the servers under test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

LOCAL = "127.0.0.1"


def ipv6_available() -> bool:
    """True if this machine can bind the IPv6 loopback ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (as a ready line shows it) as ``(host, port)``."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def recv_exactly(sock, n: int) -> bytes:
    """Read exactly ``n`` bytes from ``sock``; ``EOFError`` if the peer closes first."""
    chunks = []
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise EOFError("peer closed early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_all(sock) -> bytes:
    """Read from ``sock`` until the peer closes; everything it sent."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class Target:
    """A stdlib TCP (or unix) server in a thread: ``handler(conn)`` per connection,
    each in its own thread.  Tracks how many connections are open at once."""

    def __init__(
        self,
        handler: Callable[[socket.socket], None],
        family: int = socket.AF_INET,
        address: object = (LOCAL, 0),
    ) -> None:
        self.handler = handler
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(1024)
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(40)
        try:
            self.handler(conn)
        except Exception as exc:  # surfaced by the test that cares
            self.errors.append(exc)
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    def close(self) -> None:
        self.sock.close()


def echo_handler(conn: socket.socket) -> None:
    """Echo until EOF, then half-close back."""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def echo_through(addr: object, payload: bytes, family: int = socket.AF_INET) -> bytes:
    """Send ``payload``, half-close, and read everything back until EOF (stdlib socket)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(addr)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


def try_echo_through(addr: object, payload: bytes) -> bytes:
    """``echo_through`` for a client that may be turned away: a reset reads as b''."""
    try:
        return echo_through(addr, payload)
    except (ConnectionResetError, BrokenPipeError, OSError) as exc:
        if isinstance(exc, TimeoutError):
            raise
        return b""
