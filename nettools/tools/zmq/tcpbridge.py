"""TCP line clients <-> ZeroMQ (``nettools zmq tcp``).

Every line a client sends (without its line ending) is sent as a one-frame
message on the ``out`` socket (PUB or PUSH; a PUSH with no peer, or a full one,
makes that client wait).  Every message from ``sub`` reaches every client as
one line: its frames joined by a space, CR and LF inside shown as spaces.
Notices from the bridge start with ``*** ``.  Slow clients are handled as in
``fanout``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ...green import socket
from ...net import Server
from ..plumbing.lines import LineTooLong, recv_lines
from ..plumbing.outbox import DEFAULT_LINGER, Outbox
from ..plumbing.service import error_kind
from .fanout import BridgeStats, Fanout

__all__ = ["TcpBridge"]

log = logging.getLogger("nettools.zmq")


class TcpBridge:
    """TCP line clients on a listening green socket <-> ZeroMQ (see the module doc).

    ``out``: a green PUB or PUSH socket the clients' lines go to (None: lines
    are read and discarded).  ``sub``: a green SUB socket (subscribed by the
    caller) whose messages go to every client (None: nothing goes out).
    ``max_line``: longest line in bytes; a longer one disconnects that client,
    and a longer message from ``sub`` is dropped (counted in ``oversized``).
    ``idle_timeout``, ``queue_size``, ``slow_timeout``, ``send_buffer``: as in
    ``ChatServer``.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        out: Any = None,
        sub: Any = None,
        max_line: int = 4096,
        max_conns: int = 10_000,
        idle_timeout: float | None = None,
        queue_size: int = 256,
        slow_timeout: float | None = 5.0,
        send_buffer: int = 65536,
        stats: BridgeStats | None = None,
    ) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.stats = stats or BridgeStats()
        self.fanout = Fanout(
            sub, self._deliveries, max_message=max_line, queue_size=queue_size,
            slow_timeout=slow_timeout, send_buffer=send_buffer, stats=self.stats,
        )  # fmt: skip
        self.out = out
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.server = Server(sock, self._handle, max_conns, name="zmq-tcp")
        self.fanout.end_reason = self.server.end_reason
        self._clients: dict[Outbox, None] = {}  # insertion-ordered set

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> TcpBridge:
        self.server.start()
        self.fanout.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting and reading ZeroMQ, flush the clients' queues (for up
        to ``timeout`` seconds), then close what is left."""
        self.fanout.stop()
        for box in list(self._clients):
            box.close()  # its writer flushes, then ends the connection
        self.server.stop(timeout)

    def _deliveries(self, frames: list[bytes]) -> Iterator[tuple[Outbox, Any]]:
        line = b" ".join(frames).replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
        for box in self._clients:
            yield box, line

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        fanout = self.fanout
        if fanout.stopping:
            return
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        conn.settimeout(self.idle_timeout)
        fanout.set_send_buffer(conn)

        def send(batch: list[bytes]) -> None:
            data = b"".join(batch)
            conn.sendall(data)
            stats.bytes_out += len(data)

        box = fanout.outbox(send, conn, _notice, end_connection=True)
        self._clients[box] = None
        try:
            out = self.out
            for line in recv_lines(conn, self.max_line, stats):
                if out is not None and not fanout.stopping:
                    out.send(line)
                    stats.to_zmq += 1
        except LineTooLong:
            stats.error("line_too_long")
            self.server.end_reason(conn, "limit")
            box.put(f"*** Line longer than {self.max_line} bytes; disconnecting\n".encode())
        except TimeoutError:
            self.server.end_reason(conn, "idle")
            box.put(b"*** Disconnected: idle for too long\n")
        except OSError as exc:
            if not (box.abandoned or fanout.stopping):
                stats.error(error_kind(exc))
                self.server.end_reason(conn, "error")
                log.debug("zmq tcp: connection error: %s", exc)
        finally:
            self._clients.pop(box, None)
            try:
                # Let the writer flush the last lines, but never wait long for a
                # client that does not read.
                box.finish(self.fanout.slow_timeout or DEFAULT_LINGER)
            finally:
                stats.active -= 1


def _notice(missed: int) -> bytes:
    return f"*** You read too slowly: {missed} message(s) were not delivered\n".encode()
