"""A client's outbound queue, drained by its own writer greenthread, with the
slow-client policy every chat server shares.

Broadcasting is ``put``, which never waits: a server can hand one message to
many clients without any greenthread running in between, so every client sees
the messages in the same order.

A client that reads slowly, or not at all, first fills its kernel send
buffer; then the writer waits inside ``send`` and items queue up.  Once
``queue_size`` items wait, further ones are dropped for that client and its
*slow clock* starts.  Each batch the writer gets through (at most
``BATCH_BYTES``, so that a slow reader shows progress often) stops the clock;
the next drop starts it again.  Once the client has read its queue down to
half, ``on_caught_up(missed)`` lets the server tell it how many it missed.

So a client is judged by its own progress, never by the others' traffic: one
that reads, however slowly (``BATCH_BYTES`` per ``slow_timeout`` at least),
only misses items while others talk faster than it reads -- a flood in its
room cannot get it disconnected.  One that reads nothing for ``slow_timeout``
while items are dropped is given up: ``on_slow()`` runs (in a greenthread of
its own) and nothing more is queued for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ...kernel.greenthread import GreenThread, kill, spawn
from ...kernel.hub import Timer, get_hub
from ...kernel.queue import LightQueue
from ...kernel.timeout import Timeout

__all__ = ["Outbox", "DEFAULT_LINGER", "BATCH_BYTES"]

log = logging.getLogger("nettools.outbox")

#: How long a leaving client's writer may take to flush its last lines when
#: no slow timeout bounds it.
DEFAULT_LINGER = 5.0

#: Most bytes (of str or bytes items) the writer sends in one batch; one item
#: may be larger.  A client that takes in this much every ``slow_timeout`` is
#: making progress.
BATCH_BYTES = 8192

# Tells the writer to stop once everything queued before it has been sent.
_CLOSE: Any = object()


class Outbox:
    """A bounded outbound queue and the greenthread that sends it.

    Items are ``str`` or ``bytes``.  ``send(batch)`` sends a list of items
    (what is queued at that moment, up to ``BATCH_BYTES``) and may wait; an
    ``OSError`` from it ends the writer.  ``on_end(clean)`` runs when the
    writer stops: ``clean`` is True after ``close`` when all was sent, False
    after a send failed.
    """

    __slots__ = (
        "_send", "queue_size", "slow_timeout", "_on_slow", "_on_caught_up", "_on_end",
        "_queue", "_writer", "_slow_timer", "dropped", "closing", "abandoned", "sending",
    )

    def __init__(
        self,
        send: Callable[[list[Any]], Any],
        *,
        queue_size: int,
        slow_timeout: float | None,
        on_slow: Callable[[], Any],
        on_caught_up: Callable[[int], Any],
        on_end: Callable[[bool], Any] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._send = send
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self._on_slow = on_slow
        self._on_caught_up = on_caught_up
        self._on_end = on_end
        # Bounded by put(), which knows when the client is to blame.
        self._queue: LightQueue = LightQueue()
        self._writer: GreenThread | None = None
        self._slow_timer: Timer | None = None
        self.dropped = 0  # items not delivered since the client last caught up
        self.closing = False  # nothing more is queued
        self.abandoned = False  # given up as too slow
        self.sending = False  # the writer is inside send (waiting, if anyone else runs)

    def start(self) -> Outbox:
        """Start the writer greenthread; returns self."""
        if self._writer is None:
            self._writer = spawn(self._write_loop)
        return self

    def __len__(self) -> int:
        return len(self._queue.queue)

    def put(self, item: Any) -> bool:
        """Queue ``item`` without waiting; False if it was dropped (or the outbox is closed)."""
        if self.closing:
            return False
        # While the writer is not stuck in send the backlog is ours, not the
        # client's: items from many readers handled in one hub turn pile up
        # before the writer's turn comes.  It is bounded by what that turn read.
        if len(self._queue.queue) < self.queue_size or not self.sending:
            self._queue.put_nowait(item)
            return True
        self.dropped += 1
        if self._slow_timer is None and self.slow_timeout is not None:
            self._slow_timer = get_hub().schedule(self.slow_timeout, self._slow_expired)
        return False

    def close(self) -> None:
        """Queue nothing more; the writer stops after sending what is queued."""
        if not self.closing:
            self.closing = True
            self._queue.put_nowait(_CLOSE)

    def finish(self, timeout: float | None) -> bool:
        """Close, wait up to ``timeout`` for the writer to flush, then kill it.

        True if the writer had ended by itself; False if it was killed, maybe
        in the middle of sending an item.
        """
        self.close()
        self.cancel_slow_clock()
        writer = self._writer
        if writer is None:
            return True
        try:
            if timeout is None or timeout > 0:
                with Timeout(timeout, False):
                    writer.wait()
        finally:
            ended = writer.dead
            kill(writer)
        return ended

    def kill(self) -> None:
        """Stop the writer at once (e.g. the connection is being killed)."""
        self.cancel_slow_clock()
        if self._writer is not None:
            kill(self._writer)

    def cancel_slow_clock(self) -> None:
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None

    def _slow_expired(self) -> None:
        # Runs on the hub, which must not block: do the work in a greenthread.
        spawn(self._give_up)

    def _give_up(self) -> None:
        if self._slow_timer is None or self.abandoned:
            return  # it caught up (or left) in the meantime
        self._slow_timer = None
        self.abandoned = True
        self.closing = True  # what is still queued will never be read
        self._on_slow()

    def _write_loop(self) -> None:
        """Send the queued items, batching what is already queued."""
        queue = self._queue
        low_water = self.queue_size // 2
        clean = False
        try:
            while True:
                batch = [queue.get()]
                size = 0 if batch[0] is _CLOSE else len(batch[0])
                while queue.queue and batch[-1] is not _CLOSE and size < BATCH_BYTES:
                    batch.append(queue.get_nowait())
                    if batch[-1] is not _CLOSE:
                        size += len(batch[-1])
                closing = batch[-1] is _CLOSE
                if closing:
                    batch.pop()
                if batch:
                    self.sending = True
                    self._send(batch)
                    self.sending = False
                    # The client took a batch in: it is slow at worst, not stuck.
                    self.cancel_slow_clock()
                if closing:
                    clean = True
                    return
                if self.dropped and len(queue.queue) <= low_water:
                    self._caught_up()
        except OSError as exc:
            log.debug("outbox: send failed: %s", exc)
        finally:
            self.sending = False
            if self._on_end is not None:
                self._on_end(clean)

    def _caught_up(self) -> None:
        missed, self.dropped = self.dropped, 0
        self._on_caught_up(missed)
