"""A cap on the size of the ZeroMQ messages a service takes in, kept by nettools.

libzmq has a cap of its own, ``ZMQ_MAXMSGSIZE``, but it must not be used:
libzmq 4.3 treats a message over it as a protocol error and drops the
connection, and a socket that had connected never connects again -- one
oversized message, even from a legitimate publisher, would cut a subscriber
off its feed for good.  So the services read whole messages and drop those
over their cap here: an oversized message costs that message only.  It is
counted (``oversized`` in the service's stats) and logged, at most once every
``WARN_EVERY`` seconds.

The price: a message is in memory once before it is dropped.  Keep ZeroMQ
endpoints that take messages from strangers on a trusted network.
"""

from __future__ import annotations

import logging
from typing import Any

from .ratelog import WARN_EVERY, RateLimitedWarning

__all__ = ["SizeCap", "message_size", "WARN_EVERY"]


def message_size(frames: list[bytes]) -> int:
    """The size of a multipart message: all its frames' bytes."""
    return sum(len(frame) for frame in frames)


class SizeCap:
    """At most ``limit`` bytes a message; a larger one is dropped, counted in
    ``stats.oversized`` (when ``stats`` has that field) and logged on
    ``logger`` as ``label: dropped N message(s) over ...``."""

    __slots__ = ("limit", "stats", "_warn")

    def __init__(self, limit: int, stats: Any, logger: logging.Logger, label: str) -> None:
        if limit < 1:
            raise ValueError("the message size cap must be at least 1 byte")
        self.limit = limit
        self.stats = stats
        self._warn = RateLimitedWarning(
            logger, label + ": dropped {n} message(s) over the size cap of "
            f"{limit} bytes ({{total}} in all); latest: {{detail}}",
        )

    def recv(self, sock: Any) -> list[bytes]:
        """The next message of ``sock`` (a green ZeroMQ socket) within the cap;
        waits, dropping the larger ones."""
        while True:
            frames = sock.recv_multipart()
            size = message_size(frames)
            if size <= self.limit:
                return frames
            self.drop(f"{size} bytes")

    def drop(self, detail: str) -> None:
        """Count (and maybe log) one dropped message; ``detail`` says what it was."""
        if hasattr(self.stats, "oversized"):
            self.stats.oversized += 1
        self._warn(detail)
