"""What toxics do to a connection: per-connection stages and the toxic pump.

A direction that toxics apply to runs two greenthreads: a *reader* that takes
chunks from the source, stamps each with the time it arrived and passes it
through the direction's *stages* (one per toxic, in the order the toxics were
added), and a *writer* -- the direction's own greenthread -- that sends each
item of the resulting queue when it is due.  A stage turns ``[due, payload]``
items into others: later (latency, bandwidth, slicer), cut (limit_data), held
(timeout: due never, until the toxic goes), or ends (``EOF`` later for
slow_close, ``CLOSE`` after limit_data's last byte).  The queue is first in,
first out whatever the due times, so nothing is ever reordered; and the reader
parks only while it holds no data, so stopping it loses nothing.

When a toxic goes or changes, everything queued is due at once (as Toxiproxy
flushes what its toxics hold) and later chunks meet the new stages; when the
last toxic goes, the writer drains the queue and hands the direction back to
the splice or copy path.  Toxicity is drawn once per toxic and connection.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from ...green import ssl
from ...kernel.greenthread import kill, spawn
from ...kernel.hub import Timer, get_hub
from ...kernel.sync import Event
from .relay import Connection, broken, shutdown_write
from .toxics import Toxic

__all__ = ["Faults", "toxic_pump", "make_stage", "EOF", "CLOSE", "MAX_QUEUED"]

#: Queue items that are not data: the end of the stream (a half-close passed
#: on), and the end of the connection (after limit_data).
EOF, CLOSE = "eof", "close"
#: Bytes a direction queues before its reader stops reading (TCP backpressure);
#: enough for a 100 ms latency at a few hundred Mbit/s.
MAX_QUEUED = 4 << 20
READ_SIZE = 64 * 1024
NEVER = math.inf

Item = list  # [due, payload]: mutable, so a flush can make it due now


# ------------------------------------------------------------------ stages


class Stage:
    """One toxic on one direction of one connection."""

    #: While True, the reader reads nothing more from the source.
    holds = False

    def __init__(self, toxic: Toxic, faults: Faults) -> None:
        self.toxic = toxic
        self.faults = faults
        self.last = 0.0  # when its previous output was due: keeps the order

    @property
    def attrs(self) -> dict[str, int]:
        return self.toxic.attributes

    def feed(self, items: list[Item]) -> list[Item]:
        """What comes out for ``items``; data and ends alike keep their order."""
        out = []
        for item in items:
            if isinstance(item[1], str):
                out.extend(self.end(item))
            else:
                out.extend(self.data(item[0], item[1]))
        return out

    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        self.last = max(due, self.last)
        return ([self.last, chunk],)

    def end(self, item: Item) -> Iterable[Item]:
        self.last = item[0] = max(item[0], self.last)
        return (item,)

    def restart(self, now: float) -> None:
        """The queue was flushed at ``now``: timing starts afresh."""
        self.last = now

    def attach(self) -> None:
        """The toxic starts applying to the connection."""

    def detach(self) -> None:
        """The toxic stops applying (removed, or the connection ends)."""


class Latency(Stage):
    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        delay = self.attrs["latency"]
        jitter = self.attrs["jitter"]
        if jitter:
            delay += random.uniform(-jitter, jitter)
        return super().data(due + max(delay, 0) / 1000, chunk)


class Bandwidth(Stage):
    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        rate = self.attrs["rate"] * 1000  # KB/s, as Toxiproxy: 1 KB = 1000 bytes
        if rate <= 0:
            return super().data(due, chunk)
        # Pieces of 20 ms each (within 1..64 KiB): the rate holds at every scale.
        piece = max(1, min(64 * 1024, int(rate / 50)))
        out = []
        for start in range(0, len(chunk), piece):
            part = chunk[start : start + piece]
            self.last = max(due, self.last) + len(part) / rate
            out.append([self.last, part])
        return out


class Slicer(Stage):
    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        size, variation = self.attrs["average_size"], self.attrs["size_variation"]
        if size <= 0:
            return super().data(due, chunk)
        delay = self.attrs["delay"] / 1e6
        at = max(due, self.last)
        out = []
        start = 0
        while start < len(chunk):
            n = max(1, size + (random.randint(-variation, variation) if variation else 0))
            out.append([at, chunk[start : start + n]])
            start += n
            at += delay
        self.last = at
        return out


class SlowClose(Stage):
    def end(self, item: Item) -> Iterable[Item]:
        item[0] += self.attrs["delay"] / 1000
        return super().end(item)


class Timeout(Stage):
    """Holds the stream (data due never) and closes after ``timeout`` ms (0: never)."""

    holds = True

    def __init__(self, toxic: Toxic, faults: Faults) -> None:
        super().__init__(toxic, faults)
        self.timer: Timer | None = None

    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        return ([NEVER, chunk],)  # a chunk read as the toxic came: held with the rest

    def end(self, item: Item) -> Iterable[Item]:
        item[0] = NEVER
        return (item,)

    def attach(self) -> None:
        ms = self.attrs["timeout"]
        if ms > 0:
            self.timer = get_hub().schedule(ms / 1000, self._expire)

    def detach(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        self.faults.close(f"timeout toxic: closed after {self.attrs['timeout']}ms")


class ResetPeer(Stage):
    """On the first data (or end) after it applies: wait ``timeout`` ms, then reset."""

    def __init__(self, toxic: Toxic, faults: Faults) -> None:
        super().__init__(toxic, faults)
        self.timer: Timer | None = None

    def feed(self, items: list[Item]) -> list[Item]:
        if items and not self.holds:
            self.holds = True  # read nothing more; what came is dropped
            self.timer = get_hub().schedule(self.attrs["timeout"] / 1000, self._fire)
        return []

    def detach(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fire(self) -> None:
        self.timer = None
        c = self.faults.c
        c.fail("toxic", "reset_peer toxic: connection reset")
        c.reset()


class LimitData(Stage):
    """Passes exactly ``bytes`` bytes, then closes the connection."""

    def __init__(self, toxic: Toxic, faults: Faults) -> None:
        super().__init__(toxic, faults)
        self.passed = 0

    def data(self, due: float, chunk: bytes) -> Iterable[Item]:
        if self.holds:
            return ()
        limit = self.attrs["bytes"]
        part = chunk[: max(limit - self.passed, 0)]
        self.passed += len(part)
        out = list(super().data(due, part)) if part else []
        if self.passed >= limit:
            self.holds = True
            out.append([max(due, self.last), CLOSE])
        return out

    def end(self, item: Item) -> Iterable[Item]:
        return () if self.holds else super().end(item)


_STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slicer": Slicer,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "limit_data": LimitData,
}


def make_stage(toxic: Toxic, faults: Faults) -> Stage:
    return _STAGES[toxic.type](toxic, faults)


# ------------------------------------------------------------- a direction


class Faults:
    """The toxics that apply to one direction of one connection, and the toxic
    pump running them, if one is."""

    def __init__(self, c: Connection, way: int) -> None:
        self.c = c
        self.way = way
        #: Toxic name -> (the toxic its draw was made for, its stage or None
        #: when the toxicity draw said no).
        self.stages: dict[str, tuple[Toxic, Stage | None]] = {}
        self.active: list[Stage] = []
        self.pump: ToxicPump | None = None

    def apply(self, toxics: Iterable[Toxic]) -> None:
        """Bring the stages in line with the proxy's toxics for this direction."""
        flush = False
        stages: dict[str, tuple[Toxic, Stage | None]] = {}
        added = []
        for toxic in toxics:
            prev = self.stages.get(toxic.name)
            if prev is not None:
                drawn_for, stage = prev
                if drawn_for is toxic:
                    stages[toxic.name] = prev
                    continue
                if drawn_for.type == toxic.type and drawn_for.toxicity == toxic.toxicity:
                    if stage is not None:  # attributes updated: same stage, same draw
                        stage.toxic = toxic
                        flush = True
                    stages[toxic.name] = (toxic, stage)
                    continue
                if stage is not None:
                    stage.detach()
                    flush = True
            stage = make_stage(toxic, self) if random.random() < toxic.toxicity else None
            stages[toxic.name] = (toxic, stage)
            if stage is not None:
                added.append(stage)
                if self.c.metrics is not None:
                    self.c.metrics.toxic_drawn(self.c, toxic)
        for name, (_, stage) in self.stages.items():
            if name not in stages and stage is not None:
                stage.detach()
                flush = True
        self.stages = stages
        self.active = [stage for _, stage in stages.values() if stage is not None]
        for stage in added:
            stage.attach()
        self.c.faulty[self.way] = bool(self.active)
        if self.pump is not None:
            self.pump.retool(flush)

    def holds(self) -> bool:
        return any(stage.holds for stage in self.active)

    def close(self, why: str) -> None:
        """A toxic ends the connection: a FIN each way."""
        self.c.fail("toxic", why)
        self.c.abort()

    def end(self) -> None:
        """The connection is ending: wake the toxic pump so it stops."""
        if self.pump is not None:
            self.pump.stop()

    def detach(self) -> None:
        """The connection is over: cancel every stage's timers."""
        for stage in self.active:
            stage.detach()


def toxic_pump(src: Any, dst: Any, c: Connection, way: int, carry: bytes) -> bytes | None:
    """``relay``'s path for a direction with toxics (see ``relay.FaultyPump``)."""
    return ToxicPump(src, dst, c, way, c.faults[way]).run(carry)


class ToxicPump:
    """One direction through its stages: a reader greenthread and this writer."""

    def __init__(self, src: Any, dst: Any, c: Connection, way: int, faults: Faults) -> None:
        self.src, self.dst, self.c, self.way, self.faults = src, dst, c, way, faults
        self.queue: deque[Item] = deque()
        self.queued = 0  # data bytes in the queue
        self.error: OSError | None = None
        self.stopped = False
        self.writer_wake: Event | None = None
        self.reader_wake: Event | None = None
        self.reader: Any = None

    def run(self, carry: bytes) -> bytes | None:
        self.faults.pump = self
        if carry:
            self.take(carry)
        self.reader = spawn(self.read)
        try:
            return self.write()
        finally:
            self.faults.pump = None
            if not self.reader.dead:
                kill(self.reader)  # parked holding no data: nothing is lost

    # ----------------------------------------------------------- the reader

    def read(self) -> None:
        recv, faults = self.src.recv, self.faults
        try:
            while True:
                while faults.holds() or self.queued >= MAX_QUEUED:
                    self.reader_wake = Event()
                    self.reader_wake.wait()
                try:
                    data = recv(READ_SIZE)
                except ssl.SSLZeroReturnError:
                    data = b""
                except ssl.SSLError:
                    if not self.c.eof[1 - self.way]:
                        raise
                    data = b""  # its alert answering our half-close: its end (see relay)
                if not data:
                    self.take(EOF)
                    return
                self.take(data)
        except OSError as exc:
            self.error = exc
            self._wake(self.writer_wake)

    def take(self, payload: Any) -> None:
        """Stamp ``payload`` (a chunk, or EOF) and queue what the stages make of it."""
        items = [[time.monotonic(), payload]]
        for stage in self.faults.active:
            items = stage.feed(items)
        for item in items:
            if not isinstance(item[1], str):
                self.queued += len(item[1])
        self.queue.extend(items)
        self._wake(self.writer_wake)

    # ----------------------------------------------------------- the writer

    def write(self) -> bytes | None:
        c, way, dst, queue = self.c, self.way, self.dst, self.queue
        counts = c.counts
        writing = False
        try:
            while not self.stopped:
                if not self.faults.active and not self.reader.dead:
                    kill(self.reader)  # the last toxic went: drain, then hand back
                if not queue:
                    if self.error is not None:
                        broken(c, self.error, way, False)
                        return None
                    if self.reader.dead:
                        return b""
                    self._park_writer(None)
                    continue
                due, payload = queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._park_writer(None if due == NEVER else wait)
                    continue
                queue.popleft()
                if payload == EOF:
                    c.eof[way] = True
                    shutdown_write(dst, close_notify=c.eof[1 - way])
                    return None
                if payload == CLOSE:
                    shutdown_write(dst)  # the FIN right after the last byte allowed
                    self.faults.close(f"limit_data toxic: closed after {counts[way]} bytes")
                    return None
                writing = True
                dst.sendall(payload)
                writing = False
                counts[way] += len(payload)
                self.queued -= len(payload)
                if self.queued < MAX_QUEUED // 2:
                    self._wake(self.reader_wake)
        except OSError as exc:
            broken(c, exc, way, writing)
        return None

    def _park_writer(self, timeout: float | None) -> None:
        self.writer_wake = Event()
        self.writer_wake.wait(timeout)
        self.writer_wake = None

    # -------------------------------------------------------------- changes

    def retool(self, flush: bool) -> None:
        """The stages changed; with ``flush``, everything queued is due now."""
        if flush:
            now = time.monotonic()
            for item in self.queue:
                item[0] = now
            for stage in self.faults.active:
                stage.restart(now)
        self._wake(self.writer_wake)
        self._wake(self.reader_wake)

    def stop(self) -> None:
        """The connection is ending: the writer stops at once."""
        self.stopped = True
        self._wake(self.writer_wake)

    @staticmethod
    def _wake(event: Event | None) -> None:
        if event is not None and not event.ready():
            event.send(None)
