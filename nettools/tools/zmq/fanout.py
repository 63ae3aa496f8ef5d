"""What the ZeroMQ bridges share: one SUB socket's messages fanned out to many
clients (``tcpbridge``: TCP line clients; ``wsbridge``: websockets).

Each client has its own ``Outbox``: a client that stops reading misses messages
(and is told how many once it catches up) but never delays the others, and one
that reads nothing for ``slow_timeout`` while its queue is full is disconnected.

A message over ``max_message`` bytes is dropped, counted (``oversized``) and
logged, and the feed goes on (``nettools.tools.plumbing.sizecap``; libzmq's own
cap would cut the SUB socket off its publisher for good).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...green import socket
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from ...net import shutdown_quietly
from ..plumbing.outbox import Outbox
from ..plumbing.service import Stats
from ..plumbing.sizecap import SizeCap
from .metrics import add_bridge_families

__all__ = ["FANOUT_BATCH", "BridgeStats", "Fanout"]

log = logging.getLogger("nettools.zmq")

#: Messages fanned out before the fan-out lets the writers run.
FANOUT_BATCH = 64


@dataclass
class BridgeStats(Stats):
    """``Stats`` plus what a bridge counts."""

    to_zmq: int = 0  # messages sent to ZeroMQ
    from_zmq: int = 0  # messages received from ZeroMQ
    dropped: int = 0  # deliveries skipped because a client's queue was full
    slow_disconnects: int = 0
    oversized: int = 0  # messages from ZeroMQ over the size cap: dropped


class Fanout:
    """Clients with outboxes, and the greenthread that reads ``sub`` and hands
    each message to the clients that want it.

    ``deliveries(frames)`` says who gets a message: pairs of (a client's outbox,
    what to put in it).  ``max_message``: the largest message taken from ``sub``,
    in bytes (all frames); ``cap`` drops the others.  ``queue_size``,
    ``slow_timeout``: each client's outbox; ``send_buffer``: the kernel send
    buffer of each client's socket (0: as is).
    """

    def __init__(
        self,
        sub: Any,
        deliveries: Callable[[list[bytes]], Iterable[tuple[Outbox, Any]]],
        *,
        max_message: int,
        queue_size: int,
        slow_timeout: float | None,
        send_buffer: int,
        stats: BridgeStats,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.sub = sub
        self.deliveries = deliveries
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self.send_buffer = send_buffer
        self.stats = stats
        self.cap = SizeCap(max_message, stats, log, "zmq bridge")
        self.stopping = False
        #: ``end_reason(conn, reason)`` of the server the clients came through, if any.
        self.end_reason: Callable[[Any, str], None] | None = None
        self._loop: GreenThread | None = None
        stats.metric_sources.append(lambda f: add_bridge_families(f, stats))

    def start(self) -> None:
        """Start reading ``sub`` (if there is one)."""
        if self.sub is not None and self._loop is None:
            self._loop = spawn(self._fan_out)

    def stop(self) -> None:
        """Stop reading ``sub``; ``stopping`` is true from now on."""
        self.stopping = True
        if self._loop is not None:
            kill(self._loop)

    def set_send_buffer(self, sock: Any) -> None:
        """Give a client's socket the small send buffer, so that a backlog shows up
        in its outbox instead of hiding in the kernel."""
        if self.send_buffer and sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            except OSError:
                pass  # the peer may already have gone

    def outbox(self, send: Any, conn: Any, notice: Any, *, end_connection: bool) -> Outbox:
        """A started outbox for a client on ``conn``; ``notice(missed)`` is what
        tells it that it missed messages.  With ``end_connection`` the
        connection ends when the writer does (its reader then sees EOF)."""
        stats = self.stats

        def on_slow() -> None:
            stats.slow_disconnects += 1
            if self.end_reason is not None:
                self.end_reason(conn, "slow")
            log.info("zmq bridge: disconnecting a client: too slow")
            shutdown_quietly(conn)  # wakes its reader (EOF) and its writer (EPIPE)

        def on_caught_up(missed: int) -> None:
            box.put(notice(missed))

        box = Outbox(
            send, queue_size=self.queue_size, slow_timeout=self.slow_timeout,
            on_slow=on_slow, on_caught_up=on_caught_up,
            on_end=(lambda clean: shutdown_quietly(conn)) if end_connection else None,
        )
        return box.start()

    def _fan_out(self) -> None:
        recv, sub, stats, deliveries = self.cap.recv, self.sub, self.stats, self.deliveries
        n = 0
        while True:
            frames = recv(sub)
            stats.from_zmq += 1
            for box, item in deliveries(frames):
                if not box.put(item) and not box.closing:
                    stats.dropped += 1
            n += 1
            if n % FANOUT_BATCH == 0:
                sleep(0)  # let the writers (and everyone else) run
