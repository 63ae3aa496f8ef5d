"""The green proxy: ``zmq.proxy``, ``proxy_steerable`` and ``device`` as a loop on the hub.

Not libzmq's proxy in a thread: libzmq 4.3.5's proxy stops answering its control socket
under back-pressure.  Here each direction a message can flow has a greenthread of its
own, and the control socket another, so a destination at its high-water mark holds up
only its own direction: the control socket always answers, and PAUSE takes effect
before the next message goes.

``Proxy`` is the one loop; ``nettools zmq proxy`` (``tools.zmq.proxy.ZmqProxy``) is this
loop plus its endpoints, its own control protocol and its service counts.

Frames are moved as they are (no copy into Python), with the C-level calls while they
do not need to wait; a burst ends when the source is empty or after ``PROXY_BURST``
messages, and only then are the sockets' other waiters kicked (rule 2 in ``watch``, once
per burst).  High-water marks count whole messages, so the rest of a message never
waits once its first frame is queued.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import zmq

from ...kernel.greenthread import GreenThread, spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event
from .sockets import Socket
from .watch import NOBLOCK, SNDMORE, TYPE, c_get, c_recv, c_send

__all__ = ["PROXY_BURST", "Flow", "ProxyCounts", "Proxy", "proxy", "proxy_steerable", "device"]

#: Messages one proxy direction moves before letting other greenthreads run.
PROXY_BURST = 1000

_Again = zmq.Again
_SEND_ONLY = {int(zmq.PUSH), int(zmq.PUB)}
_RECV_ONLY = {int(zmq.PULL), int(zmq.SUB)}


@dataclass(slots=True)
class Flow:
    """Messages and bytes (over all frames) moved in one direction."""

    messages: int = 0
    bytes: int = 0


@dataclass
class ProxyCounts:
    """What a proxy has moved each way and copied to its capture socket, and whether
    it is paused."""

    frontend_to_backend: Flow = field(default_factory=Flow)
    backend_to_frontend: Flow = field(default_factory=Flow)
    captured: int = 0  # messages copied to the capture socket
    paused: bool = False

    def statistics(self) -> list[bytes]:
        """The counts as libzmq's STATISTICS reply: eight native uint64 frames, the
        frontend's messages in, bytes in, messages out, bytes out, then the backend's."""
        fwd, back = self.frontend_to_backend, self.backend_to_frontend
        values = (fwd.messages, fwd.bytes, back.messages, back.bytes,
                  back.messages, back.bytes, fwd.messages, fwd.bytes)  # fmt: skip
        return [struct.pack("=Q", v) for v in values]


def _wait_recv(sock: Socket) -> Any:
    """A green recv of a frame that outlasts RCVTIMEO: a proxy ends only on errors."""
    while True:
        try:
            return sock.recv(0, False)
        except _Again:
            pass


def _wait_send(sock: Socket, frame: Any, more: bool) -> None:
    """A green send of a frame that outlasts SNDTIMEO (see ``_wait_recv``)."""
    while True:
        try:
            sock.send(frame, SNDMORE if more else 0, False)
            return
        except _Again:
            pass


def _can_flow(src: Socket, dst: Socket) -> bool:
    """Whether messages can go from ``src`` to ``dst`` (not out of a PUSH, into a PULL...)."""
    return c_get(src, TYPE) not in _SEND_ONLY and c_get(dst, TYPE) not in _RECV_ONLY


class Proxy:
    """Forwards whole messages between two green sockets until TERMINATE or an error.

    ``capture``: a socket that gets a copy of every message, either way (a PUB never
    holds the proxy up).  ``control``: a socket whose commands ``command`` carries out.
    ``counts``: where the counts go (a fresh ``ProxyCounts`` if None).  The sockets stay
    open when the proxy ends: they belong to the caller.
    """

    def __init__(
        self,
        frontend: Socket,
        backend: Socket,
        capture: Socket | None = None,
        control: Socket | None = None,
        counts: ProxyCounts | None = None,
    ) -> None:
        self.frontend = frontend
        self.backend = backend
        self.capture = capture
        self.control = control
        self.counts = counts if counts is not None else ProxyCounts()
        self._resumed = Event()  # sent while forwarding
        if not self.counts.paused:
            self._resumed.send()
        self._terminating = False

    # ------------------------------------------------------------ steering

    @property
    def paused(self) -> bool:
        return self.counts.paused

    def pause(self) -> None:
        """Stop forwarding until ``resume``; messages wait in ZeroMQ's queues."""
        self.counts.paused = True
        if self._resumed.ready():
            self._resumed.reset()

    def resume(self) -> None:
        """Forward again after ``pause``."""
        self.counts.paused = False
        if not self._resumed.ready():
            self._resumed.send()

    def terminate(self) -> None:
        """Make ``run`` return once the control command being served is answered."""
        self._terminating = True

    def command(self, frames: list[bytes]) -> list[bytes] | None:
        """Carry out one control message; the reply to send, if any.

        As libzmq: PAUSE, RESUME, TERMINATE and STATISTICS (``ProxyCounts.statistics``);
        STATISTICS is answered on any control socket, the others (with an empty frame)
        only on a REP socket.
        """
        cmd = frames[0] if frames else b""
        if cmd == b"PAUSE":
            self.pause()
        elif cmd == b"RESUME":
            self.resume()
        elif cmd == b"STATISTICS":
            return self.counts.statistics()
        elif cmd == b"TERMINATE":
            self.terminate()
        return [b""] if c_get(self.control, TYPE) == zmq.REP else None

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Forward until TERMINATE (returns) or an error (raised as libzmq's proxy
        raises it: ``ContextTerminated`` when the context is terminated,
        ``ZMQError(ENOTSOCK)`` when a socket is closed under it)."""
        done = Event()

        def finish(gt: GreenThread) -> None:
            if done.ready():
                return
            try:
                done.send(gt.wait())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                done.send_exception(exc)

        front, back, counts = self.frontend, self.backend, self.counts
        threads = []
        if _can_flow(front, back):
            threads.append(spawn(self._forward, front, back, counts.frontend_to_backend))
        if back is not front and _can_flow(back, front):
            threads.append(spawn(self._forward, back, front, counts.backend_to_frontend))
        if self.control is not None:
            threads.append(spawn(self._steer))
        for t in threads:
            t.link(finish)
        try:
            done.wait()
        finally:
            for t in threads:
                t.kill()

    def _steer(self) -> None:
        """Serve the control socket until a command terminates the proxy."""
        control = self.control
        while not self._terminating:
            reply = self.command(control.recv_multipart())
            if reply is not None:
                control.send_multipart(reply)

    def _forward(self, src: Socket, dst: Socket, flow: Flow) -> None:
        """Move whole messages from ``src`` to ``dst`` for ever (one direction)."""
        recv, send = c_recv, c_send
        nb, nbmore = NOBLOCK, NOBLOCK | SNDMORE
        capture, counts, resumed = self.capture, self.counts, self._resumed
        sw, dw = src.watch, dst.watch
        while True:
            if counts.paused:
                resumed.wait()
            n = 0
            try:
                # Only the waits below let others run (and PAUSE): a burst checks after each.
                while n < PROXY_BURST and not counts.paused:
                    try:
                        frame = recv(src, nb, False)
                    except _Again:
                        if n:
                            break
                        frame = _wait_recv(src)
                        if counts.paused:
                            resumed.wait()  # PAUSEd while this message came in: hold it
                    size = 0
                    while True:
                        size += len(frame)
                        more = frame.more
                        if capture is not None:
                            _wait_send(capture, frame, more)
                        try:
                            send(dst, frame, nbmore if more else nb, False)
                        except _Again:
                            if sw.readers or sw.writers:
                                sw.poke()  # hand on what this burst drained before waiting
                            _wait_send(dst, frame, more)
                        if not more:
                            break
                        frame = recv(src, nb, False)
                    flow.messages += 1
                    flow.bytes += size
                    if capture is not None:
                        counts.captured += 1
                    n += 1
            finally:
                if sw.readers or sw.writers:
                    sw.poke()
                if dw.readers or dw.writers:
                    dw.poke()
            if n >= PROXY_BURST:
                get_hub().yield_ready()


def proxy(frontend: Socket, backend: Socket, capture: Socket | None = None) -> None:
    """Like ``zmq.proxy``, green: forward between two sockets until an error ends it.

    Returns or raises as libzmq's proxy does: ``ContextTerminated`` when the context is
    terminated, ``ZMQError(ENOTSOCK)`` when a socket is closed under it.
    """
    Proxy(frontend, backend, capture).run()


def proxy_steerable(
    frontend: Socket, backend: Socket, capture: Socket | None = None, control: Socket | None = None
) -> None:
    """Like ``zmq.proxy_steerable``, green; ``control`` takes PAUSE, RESUME, TERMINATE
    and STATISTICS (eight native uint64 frames: frontend messages in, bytes in, messages
    out, bytes out, then the same for the backend).  A REP control socket gets a reply to
    every command (an empty frame for the first three); TERMINATE makes this return."""
    Proxy(frontend, backend, capture, control).run()


def device(device_type: int, frontend: Socket, backend: Socket) -> None:
    """Like ``zmq.device``, green: the type (QUEUE, FORWARDER, STREAMER) is informative."""
    Proxy(frontend, backend).run()
