"""Echo servers: TCP (line or raw bytes), UDP datagrams, unix sockets.

Line mode echoes each complete line back as soon as it has arrived; a client
that sends more than ``max_line`` bytes without a newline gets one error line
and is disconnected -- the server lives on.  Raw mode echoes bytes as they come.
"""

from __future__ import annotations

import logging
from typing import Any

from ..green import socket
from ..kernel.greenthread import GreenThread, kill, spawn
from ..net import Server, format_address
from .plumbing.service import Stats, error_kind

__all__ = ["EchoServer", "UdpEchoServer"]

log = logging.getLogger("nettools.echo")

RECV_SIZE = 65536


class EchoServer:
    """A TCP or unix-socket echo server on a listening green socket."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        raw: bool = False,
        max_line: int = 65536,
        idle_timeout: float | None = None,
        max_conns: int = 10_000,
        stats: Stats | None = None,
    ) -> None:
        self.raw = raw
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.stats = stats or Stats()
        self.server = Server(sock, self._handle, max_conns, name="echo")

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> EchoServer:
        self.server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.server.stop(timeout)

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        conn.settimeout(self.idle_timeout)
        try:
            if self.raw:
                self._echo_raw(conn)
            elif not self._echo_lines(conn):
                self.server.end_reason(conn, "limit")
        except TimeoutError:
            self.server.end_reason(conn, "idle")
        except OSError as exc:
            stats.error(error_kind(exc))
            self.server.end_reason(conn, "error")
            log.debug("echo: connection error: %s", exc, extra={"peer": format_address(addr)})
        finally:
            stats.active -= 1

    def _echo_raw(self, conn: socket.socket) -> None:
        stats = self.stats
        # Method calls, not bound methods kept in locals: those are two objects
        # (96 B) held by every idle connection, and no faster on CPython 3.11.
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                return
            stats.bytes_in += len(data)
            conn.sendall(data)
            stats.bytes_out += len(data)

    def _echo_lines(self, conn: socket.socket) -> bool:
        """Echo whole lines until EOF (True) or a line over the limit (False)."""
        stats = self.stats
        max_line = self.max_line
        pending = b""  # the start of a line whose newline has not arrived
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                return True  # a last line without a newline is not a line: dropped
            stats.bytes_in += len(data)
            buf = pending + data if pending else data
            end = buf.rfind(b"\n") + 1
            complete, pending = buf[:end], buf[end:]
            # Only a chunk longer than the limit can hold an over-long line.
            if len(complete) > max_line + 1:
                ok_end = _within_limit(complete, max_line)
                if ok_end < end:
                    complete, pending = complete[:ok_end], b"x" * (max_line + 1)
            if complete:
                conn.sendall(complete)
                stats.bytes_out += len(complete)
            if len(pending) > max_line:
                told = f"error: line longer than {max_line} bytes\n".encode()
                conn.sendall(told)
                stats.bytes_out += len(told)
                stats.error("line_too_long")
                return False


def _within_limit(lines: bytes, max_line: int) -> int:
    """Length of the prefix of ``lines`` made of lines no longer than ``max_line``."""
    pos = 0
    while pos < len(lines):
        nl = lines.index(b"\n", pos)
        if nl - pos > max_line:
            return pos
        pos = nl + 1
    return pos


class UdpEchoServer:
    """Sends every datagram back to its sender."""

    def __init__(self, sock: socket.socket, stats: Stats | None = None) -> None:
        self.socket = sock
        self.stats = stats or Stats()
        self._gt: GreenThread | None = None

    @property
    def address(self) -> Any:
        return self.socket.getsockname()

    def start(self) -> UdpEchoServer:
        self._gt = spawn(self._loop)
        return self

    def _loop(self) -> None:
        sock, stats = self.socket, self.stats
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                return  # closed by stop()
            stats.connections += 1
            stats.bytes_in += len(data)
            try:
                sock.sendto(data, peer)
                stats.bytes_out += len(data)
            except OSError as exc:
                stats.error(error_kind(exc))
                log.debug("udp echo: send to %s failed: %s", peer, exc)

    def stop(self, timeout: float | None = None) -> None:
        self.socket.close()
        if self._gt is not None:
            kill(self._gt)
