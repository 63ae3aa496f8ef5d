"""Reading a line protocol off a green socket, with a cap on the line length."""

from __future__ import annotations

from collections.abc import Iterator

from ...green import socket
from ...kernel.greenthread import sleep
from .service import Stats

__all__ = ["LineTooLong", "recv_lines", "RECV_SIZE"]

RECV_SIZE = 65536


class LineTooLong(Exception):
    """A line (or an unfinished one) is longer than allowed."""


def recv_lines(conn: socket.socket, max_line: int, stats: Stats) -> Iterator[bytes]:
    """``conn``'s lines, without ``\\n`` or ``\\r\\n``, until EOF; an unfinished
    last line is dropped.  Raises ``LineTooLong`` for a line over ``max_line``
    bytes; counts what it reads in ``stats.bytes_in``."""
    pending = b""
    while True:
        data = conn.recv(RECV_SIZE)
        if not data:
            return
        stats.bytes_in += len(data)
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
            if len(raw) > max_line:
                raise LineTooLong
            yield raw[:-1] if raw.endswith(b"\r") else raw
        if len(pending) > max_line:
            raise LineTooLong
        if lines:
            # recv tries first and only waits when nothing is there, so a
            # client that floods could otherwise keep the hub to itself.
            sleep(0)
